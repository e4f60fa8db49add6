"""Entry point of the OKX plugin: registers the `okx` adapter."""

from __future__ import annotations

from typing import Any

from foxtrot_stream import AdapterSpec, ExchangeAdapter, hookimpl
from foxtrot_stream_okx.settings import OkxSettings


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
            # Foxtrot has Exchange.OKX; vnpy 4.5 has no OKX member, so GLOBAL
            host_exchanges={"foxtrot": "OKX", "vnpy": "GLOBAL"},
        )
    ]
