"""Stream names and payloads, byte for byte as `binance-protocol.md` lists them.

Payloads are built as bytes with f-strings rather than through a JSON encoder: every field is
a number or an alphanumeric string, and the publisher builds tens of thousands per second.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import attrs

from foxtrot_stream_binance.simulator.prices import PricePath, fmt

_NAME = re.compile(r"^([a-z0-9]+)@(bookTicker|trade|aggTrade|depth(5|10|20)(@100ms)?)$")


@attrs.frozen
class StreamSpec:
    """A valid stream: whose, what, and for partial depth how deep and how often."""

    name: str
    symbol: str
    kind: str
    """`bookTicker`, `trade`, `aggTrade` or `depth`."""
    levels: int = 0
    period: float = 0.0


def parse_stream(name: str, paths: Mapping[str, PricePath]) -> StreamSpec | None:
    """The stream `name` names, or None if it is invalid (bad form, case or unknown symbol).

    `paths` is keyed by lowercase symbol: stream names are lowercase on Binance.
    """
    m = _NAME.match(name)
    if m is None or m.group(1) not in paths:
        return None
    symbol = paths[m.group(1)].symbol
    if m.group(3) is None:
        return StreamSpec(name, symbol, m.group(2))
    return StreamSpec(name, symbol, "depth", int(m.group(3)), 0.1 if m.group(4) else 1.0)


def book_ticker(p: PricePath, jump: int = 0) -> bytes:
    """`jump`: how far `u` is pushed past the path's update id, for `jump_ids`."""
    return (
        f'{{"u":{p.update_id + jump},"s":"{p.symbol}","b":"{fmt(p.bid)}","B":"{fmt(p.bid_qty)}",'
        f'"a":"{fmt(p.ask)}","A":"{fmt(p.ask_qty)}"}}'
    ).encode()


def _time(us: int, micro: bool) -> int:
    return us if micro else us // 1000


def trade(p: PricePath, micro: bool = False) -> bytes:
    t = _time(p.trade_us, micro)
    return (
        f'{{"e":"trade","E":{t},"s":"{p.symbol}","t":{p.trade_id},"p":"{fmt(p.last_price)}",'
        f'"q":"{fmt(p.last_qty)}","T":{t},"m":{"true" if p.buyer_maker else "false"},"M":true}}'
    ).encode()


def agg_trade(p: PricePath, micro: bool = False) -> bytes:
    t = _time(p.trade_us, micro)
    return (
        f'{{"e":"aggTrade","E":{t},"s":"{p.symbol}","a":{p.agg_id},"p":"{fmt(p.last_price)}",'
        f'"q":"{fmt(p.last_qty)}","f":{p.trade_id},"l":{p.trade_id},"T":{t},'
        f'"m":{"true" if p.buyer_maker else "false"},"M":true}}'
    ).encode()


def _side(levels: list[tuple[int, int]]) -> str:
    return ",".join(f'["{fmt(price)}","{fmt(qty)}"]' for price, qty in levels)


def depth(p: PricePath, levels: int) -> bytes:
    bids, asks = p.levels(levels)
    return (
        f'{{"lastUpdateId":{p.update_id},"bids":[{_side(bids)}],"asks":[{_side(asks)}]}}'
    ).encode()


def server_shutdown(now_us: int, micro: bool = False) -> bytes:
    return f'{{"e":"serverShutdown","E":{_time(now_us, micro)}}}'.encode()


def wrap(stream: str, payload: bytes) -> bytes:
    """The combined-stream envelope."""
    return b'{"stream":"' + stream.encode() + b'","data":' + payload + b"}"


def current(spec: StreamSpec, p: PricePath, micro: bool = False) -> bytes:
    """The latest payload of a stream, as last published (a replay, for `flap`)."""
    if spec.kind == "bookTicker":
        return book_ticker(p)
    if spec.kind == "trade":
        return trade(p, micro)
    if spec.kind == "aggTrade":
        return agg_trade(p, micro)
    return depth(p, spec.levels)


def malformed(symbol: str, combined: bool, count: int) -> list[bytes]:
    """`count` frames a real exchange should never send, cycling through one of each kind:
    invalid JSON, wrong field types, missing fields, an unknown stream, an error object with
    no request id, a non-object, and a trade with wrong types."""
    low = symbol.lower()
    book = f"{low}@bookTicker"
    kinds: list[tuple[str | None, bytes]] = [
        (None, b"{not json"),
        (book, f'{{"u":"x","s":"{symbol}","b":1,"B":"1","a":"1","A":"1"}}'.encode()),
        (book, f'{{"u":1,"s":"{symbol}"}}'.encode()),
        (
            (None, b'{"stream":"nosuch@thing","data":{"x":1}}')
            if combined
            else (None, b'{"e":"nosuchEvent","E":1,"x":1}')
        ),
        (None, b'{"code":-1,"msg":"unexpected error object"}'),
        (None, b"[1,2,3]"),
        (
            f"{low}@trade",
            f'{{"e":"trade","E":"soon","s":"{symbol}","t":"7","p":1,"q":"1","T":0}}'.encode(),
        ),
    ]
    out = []
    for i in range(count):
        stream, payload = kinds[i % len(kinds)]
        out.append(wrap(stream, payload) if combined and stream else payload)
    return out


MALFORMED_FRAMES: tuple[str, ...] = tuple(f.decode() for f in malformed("BTCUSDT", True, 7))
"""One of each malformed kind, as a combined-stream client subscribed to BTCUSDT gets them."""
