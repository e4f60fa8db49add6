"""Entry point of the OKX plugin: registers the `okx` adapter and its simulator."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from foxtrot_stream import (
    AdapterSpec,
    ExchangeAdapter,
    SimulatedExchange,
    SimulatorSpec,
    hookimpl,
)
from foxtrot_stream_okx.settings import OkxSettings

#: What `foxtrot-stream demo --adapter okx` streams (the simulator lists them).
DEMO_SYMBOLS = ("BTC-USDT", "ETH-USDT", "SOL-USDT", "OKB-USDT")


def _simulate(argv: list[str]) -> int:
    from foxtrot_stream_okx.simulator import main

    return main(argv)


async def _start_simulator(symbols: Sequence[str], rate: float) -> SimulatedExchange:
    from foxtrot_stream_okx.simulator import start_simulator

    return await start_simulator(symbols, rate)


def _build(settings: Any) -> ExchangeAdapter:
    from foxtrot_stream_okx.adapter import OkxAdapter

    return OkxAdapter(settings)


@hookimpl
def register_adapters() -> list[AdapterSpec]:
    return [
        AdapterSpec(
            name="okx",
            display_name="OkxAdapter",
            settings_cls=OkxSettings,
            factory=_build,
            description="OKX Spot: bbo-tbt stream, REST tickers polling (one request).",
            simulator=SimulatorSpec(
                main=_simulate, start=_start_simulator, demo_symbols=DEMO_SYMBOLS
            ),
            # Foxtrot has Exchange.OKX; vnpy 4.5 has no OKX member, so GLOBAL
            host_exchanges={"foxtrot": "OKX", "vnpy": "GLOBAL"},
        )
    ]
