from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from foxtrot_stream_binance.simulator import SimulatorConfig

from engine_helpers import SYMBOLS, SimulatorThread, write_settings


@pytest.fixture
def simulator() -> Iterator[SimulatorThread]:
    config = SimulatorConfig(
        symbols=SYMBOLS, rate=20.0, ping_interval=0.5, pong_timeout=2.0, seed=11
    )
    sim = SimulatorThread(config)
    yield sim
    sim.close()


@pytest.fixture
def settings_file(tmp_path: Path, simulator: SimulatorThread) -> Path:
    return write_settings(tmp_path / "vt_setting.json", simulator)
