"""Entry point of the Binance plugin: registers the `binance` adapter."""

from __future__ import annotations

from typing import Any

from foxtrot_stream.hookspecs import hookimpl
from foxtrot_stream.records import AdapterSpec, ExchangeAdapter

from foxtrot_stream_binance.settings import BinanceSettings


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
        )
    ]
