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


def test_only_the_foxtrot_integration_imports_the_foxtrot_host() -> None:
    """Foxtrot is a host, not a dependency: one module of the project imports it."""
    root = Path(foxtrot_stream.__file__).parents[2]  # the repository
    importers = set()
    for path in sorted(root.glob("[cp]*/**/*.py")):
        if ".venv" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            if any(n == "foxtrot" or n.startswith("foxtrot.") for n in names):
                importers.add(path.relative_to(root).as_posix())
    assert importers == {"core/foxtrot_stream/integrations/foxtrot.py"}
