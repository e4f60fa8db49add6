"""The OKX plugin's own keys (`okx.*` in vt_setting.json)."""

from __future__ import annotations

import attrs

from foxtrot_stream import HttpUrl, PositiveFloat, WebSocketUrl, ranged


@attrs.frozen
class OkxSettings:
    ws_url: WebSocketUrl = attrs.field(
        default=WebSocketUrl("wss://ws.okx.com:8443/ws/v5/public"),
        metadata={
            "doc": "OKX v5 public WebSocket endpoint (point it at the demo-trading host or the "
            "simulator)."
        },
    )
    rest_url: HttpUrl = attrs.field(
        default=HttpUrl("https://www.okx.com"),
        metadata={
            "doc": "OKX v5 REST endpoint, used for HTTP polling, the instrument list and the "
            "server clock."
        },
    )
    request_timeout: PositiveFloat = attrs.field(
        default=PositiveFloat(10.0),
        metadata=ranged("Timeout of one REST request (seconds).", low=0.1, high=300.0),
    )
