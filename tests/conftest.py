from __future__ import annotations

import gc
import os
from collections.abc import Iterator
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


@pytest.fixture(autouse=True)
def _heap_frozen_between_tests() -> Iterator[None]:
    """After each test, collect its garbage and freeze what lives on (`gc.freeze`), so a
    collection during a test scans only what that test made. Without it the suite's heap grows
    (hypothesis, simulations) and one full collection took up to 570 ms, landing inside
    whichever test was running: a simulator test then read a 0.1 s REST hold as 0.52 s. The
    wall-clock bounds of the end-to-end tests stay meaningful only if the test process itself
    does not stop for that long. The collection runs in the teardown of the test that made the
    garbage, so anything it raises (an unraisable `__del__`) is reported against that test."""
    yield
    gc.collect()
    gc.freeze()


@pytest.fixture(scope="session")
def host() -> PluginHost:
    """The plugins actually installed in this environment, found through entry points."""
    return PluginHost.discover()


@pytest.fixture(scope="session")
def schema(host: PluginHost) -> SettingsSchema:
    return host.schema()
