"""A Binance-Spot-compatible exchange simulator on 127.0.0.1 (see `app.py`)."""

from foxtrot_stream_binance.simulator.app import Simulator, start_simulator
from foxtrot_stream_binance.simulator.config import SimulatorConfig, synthetic_symbols
from foxtrot_stream_binance.simulator.faults import Faults
from foxtrot_stream_binance.simulator.stats import ConnectionStats, SimulatorStats
from foxtrot_stream_binance.simulator.streams import MALFORMED_FRAMES

__all__ = [
    "MALFORMED_FRAMES",
    "ConnectionStats",
    "Faults",
    "Simulator",
    "SimulatorConfig",
    "SimulatorStats",
    "start_simulator",
    "synthetic_symbols",
]
