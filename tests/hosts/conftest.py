"""The host platforms themselves (Foxtrot's and vnpy's `MainEngine`), each started as it starts.

Foxtrot is not on any package index: its modules are in ../shared/upstream/foxtrot beside the
repository (or $FOXTROT_HOST_PATH), and its imports need the `foxtrot-host` dependency group.
Outside CI a missing host or dependency skips these tests with a one-line reason; with
FOXTROT_REQUIRE_HOSTS=1 (set by .ci/run when the host folder exists) it fails them instead.

Both hosts decide their trader folder when their `utility` module is first imported (a
`.vntrader` folder in the current directory, else in the home directory) and load
vt_setting.json from it into `SETTINGS`; their `MainEngine` then changes directory to it.
The fixtures import them from a temporary trader folder whose vt_setting.json points at the
bundled simulator, and restore the working directory afterwards.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from foxtrot_stream_binance.simulator import SimulatorConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "redis"))
from engine_helpers import SYMBOLS, SimulatorThread
from redis_helpers import redis_server

__all__ = ["redis_server"]  # a fixture, for the host reading from Redis


@pytest.fixture(scope="session")
def host_simulator() -> Iterator[SimulatorThread]:
    config = SimulatorConfig(
        symbols=SYMBOLS, rate=20.0, ping_interval=0.5, pong_timeout=2.0, seed=23
    )
    sim = SimulatorThread(config)
    yield sim
    sim.close()
