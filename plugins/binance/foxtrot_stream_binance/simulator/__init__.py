"""A Binance-Spot-compatible exchange simulator on 127.0.0.1 (see `app.py`)."""

from foxtrot_stream_binance.simulator.app import (
    Simulator,
    SimulatorConfig,
    SimulatorStats,
    start_simulator,
    synthetic_symbols,
)
from foxtrot_stream_binance.simulator.faults import MALFORMED_FRAMES, Faults

__all__ = [
    "MALFORMED_FRAMES",
    "Faults",
    "Simulator",
    "SimulatorConfig",
    "SimulatorStats",
    "start_simulator",
    "synthetic_symbols",
]
