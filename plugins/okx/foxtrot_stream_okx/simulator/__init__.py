"""An OKX-v5-compatible simulator on 127.0.0.1 (see `exchange.py`; `cli.py` runs it)."""

from foxtrot_stream_okx.simulator.cli import main
from foxtrot_stream_okx.simulator.exchange import GARBAGE, OkxSimulator, Stats, start_simulator

__all__ = ["GARBAGE", "OkxSimulator", "Stats", "main", "start_simulator"]
