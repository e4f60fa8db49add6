"""The Binance plugin's own keys (`binance.*` in vt_setting.json)."""

from __future__ import annotations

import attrs

from foxtrot_stream.config.settings import HttpUrl, PositiveFloat, WebSocketUrl, ranged


@attrs.frozen
class BinanceSettings:
    ws_url: WebSocketUrl = attrs.field(
        default=WebSocketUrl("wss://stream.binance.com:9443"),
        metadata={
            "doc": "Binance Spot stream endpoint (point it at the testnet or the simulator)."
        },
    )
    rest_url: HttpUrl = attrs.field(
        default=HttpUrl("https://api.binance.com"),
        metadata={"doc": "Binance Spot REST endpoint, used for HTTP polling and exchangeInfo."},
    )
    connection_lifetime: PositiveFloat = attrs.field(
        default=PositiveFloat(24 * 3600.0),
        metadata=ranged(
            "How long Binance keeps a WebSocket connection (24 h); each connection is replaced, "
            "without a gap, at 90% of it. At most 24 h (longer, Binance would cut it first); at "
            "least 1 s.",
            low=1.0,
            high=24 * 3600.0,
        ),
    )
    request_timeout: PositiveFloat = attrs.field(
        default=PositiveFloat(10.0),
        metadata=ranged("Timeout of one REST request (seconds).", low=0.1, high=300.0),
    )
