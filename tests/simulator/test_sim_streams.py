"""Stream endpoints and payloads, field for field as binance-protocol.md lists them."""

from __future__ import annotations

import time
from decimal import Decimal

import aiohttp
import orjson
import pytest
import websockets
from conftest import MakeSim
from sim_helpers import ask, collect, next_json, texts, wait_until

from foxtrot_stream_binance.simulator import Simulator

BOOK_KEYS = {"u", "s", "b", "B", "a", "A"}
TRADE_KEYS = {"e", "E", "s", "t", "p", "q", "T", "m", "M"}
AGG_KEYS = {"e", "E", "s", "a", "p", "q", "f", "l", "T", "m", "M"}


def _is_amount(value: object) -> bool:
    return isinstance(value, str) and Decimal(value) > 0 and len(value.split(".")[1]) == 8


async def test_raw_book_ticker_has_exactly_the_documented_fields(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(f"{sim.ws_url}/ws/btcusdt@bookTicker") as ws:
        frames = [await next_json(ws) for _ in range(5)]
    ids = [f["u"] for f in frames]
    assert ids == sorted(set(ids)) and all(type(u) is int for u in ids)
    for f in frames:
        assert set(f) == BOOK_KEYS  # no event time on spot bookTicker
        assert f["s"] == "BTCUSDT"
        assert all(_is_amount(f[k]) for k in "bBaA")
        assert Decimal(f["b"]) < Decimal(f["a"])


async def test_raw_trade_has_exactly_the_documented_fields(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(trade_ratio=1.0)
    async with http.ws_connect(f"{sim.ws_url}/ws/ethusdt@trade") as ws:
        frames = [await next_json(ws) for _ in range(4)]
    now_ms = time.time() * 1000
    assert [f["t"] for f in frames] == list(range(frames[0]["t"], frames[0]["t"] + 4))
    for f in frames:
        assert set(f) == TRADE_KEYS
        assert (f["e"], f["s"], f["M"]) == ("trade", "ETHUSDT", True)
        assert type(f["E"]) is int and abs(f["E"] - now_ms) < 5000 and f["T"] == f["E"]
        assert isinstance(f["m"], bool) and _is_amount(f["p"]) and _is_amount(f["q"])


async def test_combined_stream_wraps_every_event(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    url = f"{sim.ws_url}/stream?streams=btcusdt@bookTicker/ethusdt@trade"
    async with http.ws_connect(url) as ws:
        frames = texts(await collect(ws, 0.3))
    assert {f["stream"] for f in frames} == {"btcusdt@bookTicker", "ethusdt@trade"}
    for f in frames:
        assert set(f) == {"stream", "data"}
        keys = BOOK_KEYS if f["stream"] == "btcusdt@bookTicker" else TRADE_KEYS
        assert set(f["data"]) == keys


async def test_bare_connection_subscribes_later(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(f"{sim.ws_url}/ws") as ws:
        assert await collect(ws, 0.1) == []  # nothing until asked
        answer = await ask(ws, {"method": "SUBSCRIBE", "params": ["bnbusdt@bookTicker"], "id": 1})
        assert answer == {"result": None, "id": 1}
        frame = await next_json(ws)
    assert set(frame) == BOOK_KEYS and frame["s"] == "BNBUSDT"


async def test_agg_trade_and_partial_depth(make_sim: MakeSim, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(trade_ratio=1.0)
    streams = "btcusdt@aggTrade/btcusdt@depth5@100ms/ethusdt@depth10@100ms/bnbusdt@depth20"
    async with http.ws_connect(f"{sim.ws_url}/stream?streams={streams}") as ws:
        frames = texts(await collect(ws, 0.35))
    by_stream: dict[str, list[dict[str, object]]] = {}
    for f in frames:
        by_stream.setdefault(f["stream"], []).append(f["data"])
    agg = by_stream["btcusdt@aggTrade"]
    assert all(set(d) == AGG_KEYS and d["e"] == "aggTrade" and d["f"] == d["l"] for d in agg)
    assert len(by_stream["btcusdt@depth5@100ms"]) >= 3  # every 100 ms
    assert len(by_stream["bnbusdt@depth20"]) == 1  # every second: the first at once
    for stream, levels in (("btcusdt@depth5@100ms", 5), ("ethusdt@depth10@100ms", 10)):
        for d in by_stream[stream]:
            assert set(d) == {"lastUpdateId", "bids", "asks"}
            assert len(d["bids"]) == len(d["asks"]) == levels  # type: ignore[arg-type]
            bids = [Decimal(p) for p, _q in d["bids"]]  # type: ignore[attr-defined]
            asks = [Decimal(p) for p, _q in d["asks"]]  # type: ignore[attr-defined]
            assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
            assert bids[0] < asks[0]


async def test_micro_time_unit(make_sim: MakeSim, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(trade_ratio=1.0)
    url = f"{sim.ws_url}/stream?streams=btcusdt@trade&timeUnit=MICROSECOND"
    async with (
        http.ws_connect(url) as micro,
        http.ws_connect(f"{sim.ws_url}/ws/btcusdt@trade") as milli,
    ):
        us = (await next_json(micro))["data"]
        ms = await next_json(milli)
    assert abs(us["E"] - time.time() * 1e6) < 5e6 and us["T"] == us["E"]
    assert abs(ms["E"] - time.time() * 1e3) < 5e3


@pytest.mark.parametrize(
    "path",
    [
        "/ws/nosuchusdt@bookTicker",  # unknown symbol
        "/ws/BTCUSDT@bookTicker",  # stream names are lowercase
        "/ws/btcusdt@bookticker",
        "/ws/btcusdt@depth7",
        "/stream?streams=btcusdt@bookTicker/xxx@trade",
    ],
)
async def test_invalid_streams_in_the_url_are_refused(
    sim: Simulator, http: aiohttp.ClientSession, path: str
) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        await http.ws_connect(f"{sim.ws_url}{path}")
    assert err.value.status == 400


async def test_quiet_and_silent_symbols(make_sim: MakeSim, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(rate=40.0, rates={"ethusdt": 0.0, "BNBUSDT": 5.0})
    url = f"{sim.ws_url}/stream?streams=btcusdt@bookTicker/ethusdt@bookTicker/bnbusdt@bookTicker"
    async with http.ws_connect(url) as ws:
        frames = texts(await collect(ws, 0.4))
    counts = {
        s: sum(f["stream"] == f"{s}@bookTicker" for f in frames)
        for s in ("btcusdt", "ethusdt", "bnbusdt")
    }
    assert counts["ethusdt"] == 0
    assert 1 <= counts["bnbusdt"] <= 3
    assert counts["btcusdt"] >= 10


async def test_third_party_websockets_client_gets_well_formed_frames(
    make_sim: MakeSim,
) -> None:
    """A peer we did not write: the `websockets` library, answering pings on its own."""
    sim = await make_sim(ping_interval=0.1, pong_timeout=0.3)
    url = f"{sim.ws_url}/stream?streams=btcusdt@bookTicker/ethusdt@trade"
    frames = []
    async with websockets.connect(url, ping_interval=None, compression=None) as ws:
        started = time.monotonic()
        while time.monotonic() - started < 0.5:  # longer than the pong timeout
            raw = await ws.recv()
            assert isinstance(raw, str)  # text frames
            frames.append(orjson.loads(raw))
    assert {f["stream"] for f in frames} >= {"btcusdt@bookTicker"}
    for f in frames:
        keys = BOOK_KEYS if f["stream"].endswith("@bookTicker") else TRADE_KEYS
        assert set(f) == {"stream", "data"} and set(f["data"]) == keys
    await wait_until(lambda: not sim.clients, what="the server to see the close")
    (conn,) = sim.stats.connections.values()
    assert conn.pings_sent >= 3 and conn.pongs_matched >= 3  # its pongs echoed our payloads
    assert conn.close_reason == "client"
