"""Stream endpoints and payloads, field for field as binance-protocol.md lists them."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import aiohttp
import pytest
import websockets
from conftest import MakeSim
from websockets.protocol import State

from foxtrot_stream_binance.simulator import Simulator

from simwire import (
    ask,
    check_combined,
    eventually,
    messages,
    read_json,
    running,
    stream_url,
    strictly_increasing,
    texts,
)

BOOK_KEYS = {"u", "s", "b", "B", "a", "A"}
TRADE_KEYS = {"e", "E", "s", "t", "p", "q", "T", "m", "M"}
AGG_KEYS = {"e", "E", "s", "a", "p", "q", "f", "l", "T", "m", "M"}


def _is_amount(value: object) -> bool:
    return isinstance(value, str) and Decimal(value) > 0 and len(value.split(".")[1]) == 8


async def test_raw_book_ticker_has_exactly_the_documented_fields(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(f"{sim.ws_url}/ws/btcusdt@bookTicker") as ws:
        frames = [await read_json(ws) for _ in range(5)]
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
        frames = [await read_json(ws) for _ in range(4)]
    now_ms = time.time() * 1000
    assert [f["t"] for f in frames] == list(range(frames[0]["t"], frames[0]["t"] + 4))
    for f in frames:
        assert set(f) == TRADE_KEYS
        assert (f["e"], f["s"], f["M"]) == ("trade", "ETHUSDT", True)
        assert type(f["E"]) is int and abs(f["E"] - now_ms) < 5000 and f["T"] == f["E"]
        assert isinstance(f["m"], bool) and _is_amount(f["p"]) and _is_amount(f["q"])


async def test_bare_connection_subscribes_later(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(f"{sim.ws_url}/ws") as ws:
        assert await messages(ws, 0.1) == []  # nothing until asked
        answer = await ask(ws, {"method": "SUBSCRIBE", "params": ["bnbusdt@bookTicker"], "id": 1})
        assert answer == {"result": None, "id": 1}
        frame = await read_json(ws)
    assert set(frame) == BOOK_KEYS and frame["s"] == "BNBUSDT"


async def test_agg_trade_and_partial_depth(make_sim: MakeSim, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(trade_ratio=1.0)
    streams = "btcusdt@aggTrade/btcusdt@depth5@100ms/ethusdt@depth10@100ms/bnbusdt@depth20"
    async with http.ws_connect(f"{sim.ws_url}/stream?streams={streams}") as ws:
        frames = texts(await messages(ws, 0.35))
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
        us = (await read_json(micro))["data"]
        ms = await read_json(milli)
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
        frames = texts(await messages(ws, 0.4))
    counts = {
        s: sum(f["stream"] == f"{s}@bookTicker" for f in frames)
        for s in ("btcusdt", "ethusdt", "bnbusdt")
    }
    assert counts["ethusdt"] == 0
    assert 1 <= counts["bnbusdt"] <= 3
    assert counts["btcusdt"] >= 10


# 10 pongs a second: over the default limit of 5 incoming messages a second
HEARTBEAT = {"ping_interval": 0.1, "pong_timeout": 0.25, "incoming_limit": 100}


async def test_third_party_websockets_client_gets_well_formed_frames_and_survives() -> None:
    """A peer we did not write: the `websockets` library parses the frames, answers the
    server's pings and closes on its own; the simulator must look to it as Binance does."""
    async with running(symbols=("BTCUSDT", "ETHUSDT"), rate=50.0, **HEARTBEAT) as sim:
        url = stream_url(sim, "btcusdt@bookTicker", "btcusdt@trade")
        frames: list[str | bytes] = []
        async with websockets.connect(url, proxy=None, compression=None) as ws:
            started = time.monotonic()
            # three times the pong timeout: only answered pings keep the connection
            while time.monotonic() - started < 0.75:
                frames.append(await ws.recv())
            assert ws.state is State.OPEN
            (conn,) = sim.stats.open_connections()
            assert conn.close_reason is None
            assert conn.pings_sent >= 4
            assert conn.pongs_matched >= conn.pings_sent - 1  # the last may be in flight
            assert sim.stats.pong_timeouts == 0
        await eventually(lambda: not sim.clients, what="the server to see the close")
        assert conn.close_reason == "client"

    assert all(isinstance(f, str) for f in frames), "data goes in text frames"
    parsed = [check_combined(json.loads(f)) for f in frames]
    kinds = {(symbol, kind) for symbol, kind, _ in parsed}
    assert kinds == {("BTCUSDT", "bookTicker"), ("BTCUSDT", "trade")}
    book_ids = [d["u"] for _, kind, d in parsed if kind == "bookTicker"]
    trade_ids = [d["t"] for _, kind, d in parsed if kind == "trade"]
    assert len(book_ids) >= 20 and strictly_increasing(book_ids)
    assert trade_ids and strictly_increasing(trade_ids)


async def test_update_ids_increase_per_symbol_on_a_shared_connection() -> None:
    async with running(symbols=("BTCUSDT", "ETHUSDT", "BNBUSDT"), rate=150.0) as sim:
        url = stream_url(sim, "btcusdt@bookTicker", "ethusdt@bookTicker", "bnbusdt@bookTicker")
        async with websockets.connect(url, proxy=None) as ws:
            frames = [json.loads(await ws.recv()) for _ in range(60)]
    ids: dict[str, list[int]] = {}
    for frame in frames:
        symbol, kind, data = check_combined(frame)
        assert frame["stream"] == f"{symbol.lower()}@bookTicker" and kind == "bookTicker"
        ids.setdefault(symbol, []).append(data["u"])
    assert set(ids) == {"BTCUSDT", "ETHUSDT", "BNBUSDT"}
    assert all(strictly_increasing(u) for u in ids.values()), ids
