"""The guide's three rollback procedures, as tests of the one routing function."""

from __future__ import annotations

from foxtrot_stream.config.settings import SettingsSchema, load
from foxtrot_stream.contract.model import TransportKind
from foxtrot_stream.runtime.routing import route, why_http

WS, HTTP = TransportKind.WEBSOCKET, TransportKind.HTTP
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


def routes(text: str, schema: SettingsSchema) -> dict[str, TransportKind]:
    settings = load(text=text, schema=schema).settings
    return {s: route(settings, "binance", s) for s in SYMBOLS}


def test_everything_on_websocket_with_the_guides_example(schema: SettingsSchema) -> None:
    text = '{"websocket.enabled": true, "websocket.binance.enabled": true}'
    assert routes(text, schema) == dict.fromkeys(SYMBOLS, WS)


def test_default_is_http_for_backward_compatibility(schema: SettingsSchema) -> None:
    assert routes("{}", schema) == dict.fromkeys(SYMBOLS, HTTP)


def test_quick_disable(schema: SettingsSchema) -> None:
    text = '{"websocket.enabled": false, "websocket.binance.enabled": true}'
    assert routes(text, schema) == dict.fromkeys(SYMBOLS, HTTP)
    settings = load(text=text, schema=schema).settings
    assert why_http(settings, "binance", "BTCUSDT") == "websocket.enabled is false"


def test_per_adapter_disable(schema: SettingsSchema) -> None:
    text = '{"websocket.enabled": true, "websocket.binance.enabled": false}'
    assert routes(text, schema) == dict.fromkeys(SYMBOLS, HTTP)
    settings = load(text=text, schema=schema).settings
    assert why_http(settings, "binance", "ETHUSDT") == "websocket.binance.enabled is false"
    # other adapters are unaffected
    other = load(text=text, schema=SettingsSchema(adapters=("binance", "kraken"))).settings
    assert route(other, "kraken", "XBTUSD") == WS


def test_per_symbol_fallback(schema: SettingsSchema) -> None:
    text = '{"websocket.enabled": true, "websocket.binance.symbols": ["BTCUSDT", "ETHUSDT"]}'
    assert routes(text, schema) == {"BTCUSDT": WS, "ETHUSDT": WS, "SOLUSDT": HTTP}
    settings = load(text=text, schema=schema).settings
    assert why_http(settings, "binance", "SOLUSDT") == (
        "SOLUSDT is not in websocket.binance.symbols"
    )
    assert why_http(settings, "binance", "BTCUSDT") is None


def test_per_symbol_snippet_alone_keeps_the_master_switch_default(schema: SettingsSchema) -> None:
    # The guide's snippet is an edit of a file that already has websocket.enabled true; on its
    # own the master switch keeps its default (false) and everything is polled.
    text = '{"websocket.binance.symbols": ["BTCUSDT", "ETHUSDT"]}'
    assert routes(text, schema) == dict.fromkeys(SYMBOLS, HTTP)


def test_symbol_case_does_not_matter(schema: SettingsSchema) -> None:
    settings = load(
        text='{"websocket.enabled": true, "websocket.binance.symbols": ["btcusdt"]}', schema=schema
    ).settings
    assert route(settings, "binance", "btcusdt") == WS
