"""REST: the endpoints, their weights in X-MBX-USED-WEIGHT-1M, 429 then 418 with Retry-After,
and agreement with the streams (same book, comparable update ids)."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from simwire import check_decimal, collect, read_json, running, stream_url

SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT")
ROW_KEYS = {"symbol", "bidPrice", "bidQty", "askPrice", "askQty"}


async def _get(http: aiohttp.ClientSession, url: str) -> tuple[int, Any, Any]:
    async with http.get(url) as r:
        return r.status, await r.json(content_type=None), r.headers


def _weight(headers: Any) -> int:
    return int(headers["X-MBX-USED-WEIGHT-1M"])


def _check_row(row: Any, symbol: str) -> None:
    assert set(row) == ROW_KEYS and row["symbol"] == symbol, row  # no update id, no time
    for key in ("bidPrice", "bidQty", "askPrice", "askQty"):
        check_decimal(row[key])
    assert Decimal(row["bidPrice"]) < Decimal(row["askPrice"])


async def test_ping_time_and_exchange_info() -> None:
    async with (
        running(
            symbols=SYMBOLS, weight_limit=1234, statuses={"ETHUSDT": "BREAK", "BNBUSDT": "HALT"}
        ) as sim,
        aiohttp.ClientSession() as http,
    ):
        status, body, _ = await _get(http, f"{sim.rest_url}/api/v3/ping")
        assert (status, body) == (200, {})
        status, body, _ = await _get(http, f"{sim.rest_url}/api/v3/time")
        assert status == 200 and set(body) == {"serverTime"}
        assert abs(body["serverTime"] - time.time() * 1000) < 5000
        status, info, _ = await _get(http, f"{sim.rest_url}/api/v3/exchangeInfo")
        _, one, _ = await _get(http, f"{sim.rest_url}/api/v3/exchangeInfo?symbol=ETHUSDT")
    assert status == 200
    assert [s["symbol"] for s in one["symbols"]] == ["ETHUSDT"]
    btc = info["symbols"][0]
    assert (btc["baseAsset"], btc["quoteAsset"]) == ("BTC", "USDT")
    weight_limits = [r for r in info["rateLimits"] if r["rateLimitType"] == "REQUEST_WEIGHT"]
    assert weight_limits == [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 1234}
    ]
    statuses = {s["symbol"]: s["status"] for s in info["symbols"]}
    assert statuses == {"BTCUSDT": "TRADING", "ETHUSDT": "BREAK", "BNBUSDT": "HALT"}


async def test_book_ticker_by_symbol_by_list_and_all() -> None:
    async with running(symbols=SYMBOLS) as sim, aiohttp.ClientSession() as http:
        base = f"{sim.rest_url}/api/v3/ticker/bookTicker"
        status, row, _ = await _get(http, f"{base}?symbol=ETHUSDT")
        assert status == 200
        _check_row(row, "ETHUSDT")

        wanted = json.dumps(["BNBUSDT", "BTCUSDT"], separators=(",", ":"))
        status, rows, _ = await _get(http, f"{base}?symbols={quote(wanted)}")
        assert status == 200 and isinstance(rows, list)
        assert [r["symbol"] for r in rows] == ["BNBUSDT", "BTCUSDT"]
        for r in rows:
            _check_row(r, r["symbol"])

        status, rows, _ = await _get(http, base)
        assert status == 200 and [r["symbol"] for r in rows] == list(SYMBOLS)

        status, price, _ = await _get(http, f"{sim.rest_url}/api/v3/ticker/price?symbol=BTCUSDT")
        assert status == 200 and set(price) == {"symbol", "price"}
        check_decimal(price["price"])
        status, prices, _ = await _get(http, f"{sim.rest_url}/api/v3/ticker/price")
        assert status == 200 and [p["symbol"] for p in prices] == list(SYMBOLS)
        assert all(set(p) == {"symbol", "price"} for p in prices)


async def test_weights_are_reflected_in_the_used_weight_header() -> None:
    async with running(symbols=SYMBOLS) as sim, aiohttp.ClientSession() as http:
        api = f"{sim.rest_url}/api/v3"
        listed = quote('["BTCUSDT","ETHUSDT"]')
        steps = [
            ("/ping", 1),
            ("/time", 1),
            ("/ticker/bookTicker?symbol=BTCUSDT", 2),
            (f"/ticker/bookTicker?symbols={listed}", 4),
            ("/ticker/bookTicker", 4),
            ("/exchangeInfo", 20),
            ("/depth?symbol=BTCUSDT", 5),  # default limit 100
            ("/depth?symbol=BTCUSDT&limit=100", 5),
            ("/depth?symbol=BTCUSDT&limit=101", 25),
            ("/depth?symbol=BTCUSDT&limit=500", 25),
            ("/depth?symbol=BTCUSDT&limit=501", 50),
            ("/depth?symbol=BTCUSDT&limit=1000", 50),
            ("/depth?symbol=BTCUSDT&limit=1001", 250),
            ("/depth?symbol=BTCUSDT&limit=5000", 250),
            ("/ticker/price?symbol=BTCUSDT", 2),
            ("/ticker/price", 4),
        ]
        used = 0
        for path, weight in steps:
            status, _, headers = await _get(http, api + path)
            used += weight
            assert status == 200, path
            assert _weight(headers) == used, path
        # errors cost their weight too, and an unknown path 1
        status, _, headers = await _get(http, f"{api}/ticker/bookTicker?symbol=NOPE")
        assert status == 400 and _weight(headers) == used + 2
        async with http.get(f"{api}/nothing") as r:
            assert r.status == 404 and _weight(r.headers) == used + 3


async def test_depth_levels_follow_the_limit() -> None:
    async with running(symbols=SYMBOLS) as sim, aiohttp.ClientSession() as http:
        status, book, _ = await _get(http, f"{sim.rest_url}/api/v3/depth?symbol=BTCUSDT&limit=7")
    assert status == 200 and set(book) == {"lastUpdateId", "bids", "asks"}
    assert type(book["lastUpdateId"]) is int
    assert len(book["bids"]) == len(book["asks"]) == 7
    bids = [Decimal(p) for p, q in book["bids"]]
    asks = [Decimal(p) for p, q in book["asks"]]
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks) and bids[0] < asks[0]
    assert all(check_decimal(q) for _, q in book["bids"] + book["asks"])


async def test_depth_is_capped_at_5000_levels() -> None:
    async with running(symbols=SYMBOLS) as sim, aiohttp.ClientSession() as http:
        url = f"{sim.rest_url}/api/v3/depth?symbol=BTCUSDT&limit=9000"
        status, book, _ = await _get(http, url)
    assert status == 200 and len(book["bids"]) == len(book["asks"]) == 5000


async def test_weight_limit_gives_429_then_418_with_retry_after() -> None:
    config = {"weight_limit": 10, "ban_after": 2, "ban_seconds": 30.0, "weight_window": 60.0}
    async with running(symbols=SYMBOLS, **config) as sim, aiohttp.ClientSession() as http:
        url = f"{sim.rest_url}/api/v3/ticker/bookTicker"  # weight 4
        answers = [await _get(http, url) for _ in range(7)]
        ping, _, _ = await _get(http, f"{sim.rest_url}/api/v3/ping")
    assert ping == 418  # banned for everything
    assert _weight(answers[2][2]) == 12
    assert answers[2][1] == {
        "code": -1003,
        "msg": "Too much request weight used; current limit is 10 request weight per 1 MINUTE. "
        "Please use WebSocket Streams for live updates to avoid polling the API.",
    }
    assert answers[4][1]["msg"].startswith("Way too much request weight used; IP banned until ")
    statuses = [status for status, _, _ in answers]
    # 4, 8 pass; 12 is over 10: ban_after (2) answers of 429, then the ban
    assert statuses == [200, 200, 429, 429, 418, 418, 418], statuses
    for status, body, headers in answers[2:]:
        assert body["code"] == -1003, body
        retry = headers["Retry-After"]
        assert retry.isdigit(), "whole seconds"
        if status == 429:
            assert 1 <= int(retry) <= 60  # the rest of the minute
        else:
            assert 28 <= int(retry) <= 30  # the ban
    assert sim.stats.rest_throttled == 2 and sim.stats.rest_banned == 4


async def test_the_window_and_the_ban_end() -> None:
    config = {"weight_limit": 4, "ban_after": 1, "ban_seconds": 0.3, "weight_window": 0.4}
    async with running(symbols=SYMBOLS, **config) as sim, aiohttp.ClientSession() as http:
        url = f"{sim.rest_url}/api/v3/ticker/bookTicker"
        statuses = [(await _get(http, url))[0] for _ in range(3)]
        assert statuses == [200, 429, 418]
        await asyncio.sleep(0.45)  # both the ban and the window are over
        status, _, headers = await _get(http, url)
        assert status == 200 and _weight(headers) <= 4


async def test_rest_answers_the_state_the_streams_last_published() -> None:
    async with (
        running(symbols=SYMBOLS, rate=50.0) as sim,
        aiohttp.ClientSession() as http,
        http.ws_connect(stream_url(sim, "btcusdt@bookTicker", "btcusdt@depth20@100ms")) as ws,
    ):
        frames = [await read_json(ws)]
        while len({f["stream"] for f in frames}) < 2:
            frames.append(await read_json(ws))
        sim.set_rate("BTCUSDT", 0.0)  # freeze the book, then read until it is quiet
        deadline = time.monotonic() + 2.0
        while True:  # depth20@100ms goes on, every 100 ms, with the frozen book
            more = [json.loads(f) for f in await collect(ws, 0.15)]
            frames += more
            if not any(f["stream"] == "btcusdt@bookTicker" for f in more):
                break
            assert time.monotonic() < deadline, "the book did not freeze"
        base = f"{sim.rest_url}/api/v3"
        _, row, _ = await _get(http, f"{base}/ticker/bookTicker?symbol=BTCUSDT")
        _, book, _ = await _get(http, f"{base}/depth?symbol=BTCUSDT&limit=20")
    last = [f["data"] for f in frames if f["stream"] == "btcusdt@bookTicker"][-1]
    depths = [f["data"] for f in frames if f["stream"].startswith("btcusdt@depth")]
    assert (row["bidPrice"], row["bidQty"], row["askPrice"], row["askQty"]) == (
        last["b"],
        last["B"],
        last["a"],
        last["A"],
    )
    assert book["lastUpdateId"] == last["u"]  # comparable with the stream's u
    assert book["bids"][0] == [last["b"], last["B"]] and book["asks"][0] == [last["a"], last["A"]]
    assert book == depths[-1]  # the partial-depth stream and REST agree too
    assert row == sim.book("BTCUSDT")


async def test_depth_last_update_id_is_comparable_with_stream_u() -> None:
    async with (
        running(symbols=SYMBOLS, rate=50.0) as sim,
        aiohttp.ClientSession() as http,
        http.ws_connect(stream_url(sim, "ethusdt@bookTicker", combined=False)) as ws,
    ):
        before = await read_json(ws)
        _, book, _ = await _get(http, f"{sim.rest_url}/api/v3/depth?symbol=ETHUSDT&limit=5")
        frames = [before] + [json.loads(f) for f in await collect(ws, 0.15)]
    snapshot = book["lastUpdateId"]
    ids = [f["u"] for f in frames]
    assert ids[0] <= snapshot < ids[-1]
    # the snapshot is one of the streamed book states, and the same book
    (match,) = [f for f in frames if f["u"] == snapshot]
    assert book["bids"][0] == [match["b"], match["B"]]
    assert book["asks"][0] == [match["a"], match["A"]]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("/ticker/bookTicker?symbol=NOSUCHUSDT", -1121),
        # one bad symbol fails the batch
        ("/ticker/bookTicker?symbols=" + quote('["BTCUSDT","NOSUCHUSDT"]'), -1121),
        ("/depth?symbol=NOSUCHUSDT", -1121),
        ("/ticker/bookTicker?symbols=" + quote('["BTCUSDT","BTCUSDT"]'), -1101),
        ("/ticker/bookTicker?symbols=" + quote("BTCUSDT"), -1100),
        ("/ticker/bookTicker?symbol=btc%20usdt", -1100),
        ("/ticker/bookTicker?symbol=btcusdt", -1100),
        ("/ticker/bookTicker?symbols=" + quote("[]"), -1102),
        ("/ticker/bookTicker?symbol=BTCUSDT&symbols=" + quote('["ETHUSDT"]'), -1128),
        ("/depth", -1102),
        ("/depth?symbol=BTCUSDT&limit=ten", -1100),
    ],
)
async def test_parameter_errors_have_binance_codes(query: str, code: int) -> None:
    async with running(symbols=SYMBOLS) as sim, aiohttp.ClientSession() as http:
        status, body, headers = await _get(http, f"{sim.rest_url}/api/v3{query}")
    assert status == 400 and body["code"] == code and body["msg"], body
    assert "X-MBX-USED-WEIGHT-1M" in headers
    if code == -1121:
        assert body == {"code": -1121, "msg": "Invalid symbol."}
