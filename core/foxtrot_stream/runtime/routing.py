"""Which transport serves a symbol, by the settings alone (the guide's rollback procedures)."""

from __future__ import annotations

from foxtrot_stream.config.settings import Settings
from foxtrot_stream.contract.model import TransportKind


def route(settings: Settings, adapter: str, symbol: str) -> TransportKind:
    """WebSocket only if the master switch, the adapter's switch and its symbol list allow it.

    This is the configured route; at run time the breaker may still move a WebSocket symbol to
    HTTP polling while the WebSocket is failing.
    """
    return TransportKind.HTTP if why_http(settings, adapter, symbol) else TransportKind.WEBSOCKET


def why_http(settings: Settings, adapter: str, symbol: str) -> str | None:
    """The reason `route` sends a symbol to HTTP polling, in the user's terms; None for WS."""
    if not settings.websocket.enabled:
        return "websocket.enabled is false"
    per_adapter = settings.adapter(adapter)
    if not per_adapter.enabled:
        return f"websocket.{adapter}.enabled is false"
    if per_adapter.symbols and symbol.upper() not in per_adapter.symbols:
        return f"{symbol} is not in websocket.{adapter}.symbols"
    return None
