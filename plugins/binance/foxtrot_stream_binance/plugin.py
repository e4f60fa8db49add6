"""Entry point of the Binance plugin: registers the `binance` adapter."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from foxtrot_stream.contract.hookspecs import hookimpl
from foxtrot_stream.contract.records import (
    AdapterSpec,
    ExchangeAdapter,
    SimulatedExchange,
    SimulatorSpec,
)
from foxtrot_stream_binance.settings import BinanceSettings


def _simulate(argv: list[str]) -> int:
    from foxtrot_stream_binance.simulator.cli import main

    return main(argv)


async def _start_simulator(symbols: Sequence[str], rate: float) -> SimulatedExchange:
    from foxtrot_stream_binance.simulator import start_simulator

    return await start_simulator(symbols, rate)


def _build(settings: Any) -> ExchangeAdapter:
    from foxtrot_stream_binance.adapter import BinanceAdapter

    return BinanceAdapter(settings)


@hookimpl
def register_adapters() -> list[AdapterSpec]:
    return [
        AdapterSpec(
            name="binance",
            display_name="BinanceAdapter",
            settings_cls=BinanceSettings,
            factory=_build,
            description="Binance Spot: bookTicker + trade streams, REST bookTicker polling.",
            simulator=SimulatorSpec(main=_simulate, start=_start_simulator),
            # Foxtrot has Exchange.BINANCE; vnpy 4.5 has no Binance member, so GLOBAL
            host_exchanges={"foxtrot": "BINANCE", "vnpy": "GLOBAL"},
        )
    ]
