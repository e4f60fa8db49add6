"""The public API: everything a plugin author needs from `import foxtrot_stream`, cheaply."""

from __future__ import annotations

import json
import subprocess
import sys

import foxtrot_stream

HEAVY = (
    "foxtrot_stream.integrations.engine",
    "foxtrot_stream.runtime",
    "foxtrot_stream.surfaces",
    "aiohttp",
    "prometheus_client",
    "rich",
)


def test_every_public_name_resolves() -> None:
    for name in foxtrot_stream.__all__:
        assert getattr(foxtrot_stream, name) is not None, name


def test_importing_what_a_plugin_needs_loads_no_runtime() -> None:
    """The hook marker, the records and `Tick` without the engine, the web server or
    Prometheus: a plugin (or a tool that only lists plugins) pays for the contract only."""
    code = (
        "import sys, json\n"
        "from foxtrot_stream import hookimpl, Tick, AdapterSpec, ExchangeAdapter, ranged\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(done.stdout)
    heavy = [m for m in loaded if m.startswith(HEAVY)]
    assert not heavy, heavy


def test_host_classes_load_on_first_use() -> None:
    from foxtrot_stream import StreamEngine
    from foxtrot_stream.integrations.engine import StreamEngine as Direct

    assert StreamEngine is Direct
