"""The project's tests hold with another exchange plugin installed.

A throwaway distribution (`foxtrot-stream-extra`, adapter `extraex`, with its own ranged
setting) is written to a temporary path and put on the path of a pytest run of the tests that
depend on which plugins are installed: discovery, settings and their docs, the CLI, and
`StreamEngine` (whose `subscribe(adapter=None)` must still find the adapter the settings
configure)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from foxtrot_stream.testing import fake_distribution

ROOT = Path(__file__).resolve().parents[1]
EXTRA = """
import attrs
from foxtrot_stream import AdapterSpec, PositiveFloat, hookimpl, ranged


@attrs.frozen
class ExtraSettings:
    timeout: PositiveFloat = attrs.field(
        default=PositiveFloat(5.0), metadata=ranged("Timeout (seconds).", low=0.1, high=60.0)
    )


@hookimpl
def register_adapters():
    return [AdapterSpec(name="extraex", display_name="ExtraAdapter",
                        settings_cls=ExtraSettings, factory=lambda s: None)]
"""
SENSITIVE = [
    "tests/test_plugins.py",
    "tests/test_settings.py",
    "tests/test_docs.py",
    "tests/test_cli.py",
    "tests/test_bad_settings.py",
    "tests/test_public_api.py",
    "tests/engine/test_engine_api.py",
    "tests/engine/test_consumers.py",
]


@pytest.mark.skipif(bool(os.environ.get("FOXTROT_EXTRA_PLUGIN")), reason="this is the inner run")
def test_plugin_sensitive_tests_pass_with_another_plugin_installed(tmp_path: Path) -> None:
    root = fake_distribution(
        tmp_path, "foxtrot-stream-extra", "0.0.1", {"extraex": "fx_extra"}, {"fx_extra": EXTRA}
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    env["FOXTROT_EXTRA_PLUGIN"] = "1"
    probe = subprocess.run(
        [sys.executable, "-c", "from foxtrot_stream.contract.plugins import PluginHost; "
         "print(sorted(PluginHost.discover().adapters))"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "extraex" in probe.stdout  # the extra plugin is really installed for the run
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SENSITIVE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:]
