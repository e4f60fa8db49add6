"""The core never imports a plugin: everything a plugin adds comes through entry points."""

from __future__ import annotations

import ast
from pathlib import Path

import foxtrot_stream

PLUGIN_PACKAGES = ("foxtrot_stream_binance", "foxtrot_stream_http_fallback")


def test_core_imports_no_plugin() -> None:
    root = Path(foxtrot_stream.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.startswith(PLUGIN_PACKAGES)]
    assert offenders == []
