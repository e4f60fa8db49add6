from __future__ import annotations

import os
from pathlib import Path

import pytest

from foxtrot_stream.config.settings import SettingsSchema
from foxtrot_stream.contract.plugins import PluginHost

# The dev install has uvloop (foxtrot-stream[fast]), which `run` and StreamEngine would take by
# default: the suite runs them on asyncio's own loop, as pytest-asyncio runs the tests, so the
# default loop stays the tested one. tests/e2e/test_run_command.py runs `run --loop uvloop`;
# FOXTROT_STREAM_LOOP=uvloop in the environment runs the whole suite's CLI and engines on it.
os.environ.setdefault("FOXTROT_STREAM_LOOP", "asyncio")

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def host() -> PluginHost:
    """The plugins actually installed in this environment, found through entry points."""
    return PluginHost.discover()


@pytest.fixture(scope="session")
def schema(host: PluginHost) -> SettingsSchema:
    return host.schema()
