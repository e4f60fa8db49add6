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
        running(symbols=SYMBOLS, weight_limit=1234, statuses={"BNBUSDT": "HALT"}) as sim,
        aiohttp.ClientSession() as http,
    ):
        status, body, _ = await _get(http, f"{sim.rest_url}/api/v3/ping")
        assert (status, body) == (200, {})
        status, body, _ = await _get(http, f"{sim.rest_url}/api/v3/time")
        assert status == 200 and set(body) == {"serverTime"}
        assert abs(body["serverTime"] - time.time() * 1000) < 5000
        status, info, _ = await _get(http, f"{sim.rest_url}/api/v3/exchangeInfo")
    assert status == 200
    weight_limits = [r for r in info["rateLimits"] if r["rateLimitType"] == "REQUEST_WEIGHT"]
    assert weight_limits == [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 1234}
    ]
    statuses = {s["symbol"]: s["status"] for s in info["symbols"]}
    assert statuses == {"BTCUSDT": "TRADING", "ETHUSDT": "TRADING", "BNBUSDT": "HALT"}


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
        ]
        used = 0
        for path, weight in steps:
            status, _, headers = await _get(http, api + path)
            used += weight
            assert status == 200, path
            assert _weight(headers) == used, path


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


@pytest.mark.parametrize(
    "query",
    [
        "/ticker/bookTicker?symbol=NOSUCHUSDT",
        "/ticker/bookTicker?symbols=" + quote('["BTCUSDT","NOSUCHUSDT"]'),
        "/depth?symbol=NOSUCHUSDT",
    ],
)
async def test_unknown_symbol_is_1121_with_http_400(query: str) -> None:
    async with running(symbols=SYMBOLS) as sim, aiohttp.ClientSession() as http:
        status, body, headers = await _get(http, f"{sim.rest_url}/api/v3{query}")
    assert (status, body) == (400, {"code": -1121, "msg": "Invalid symbol."})
    assert "X-MBX-USED-WEIGHT-1M" in headers


async def test_weight_limit_gives_429_then_418_with_retry_after() -> None:
    config = {"weight_limit": 10, "ban_after": 2, "ban_seconds": 30.0, "weight_window": 60.0}
    async with running(symbols=SYMBOLS, **config) as sim, aiohttp.ClientSession() as http:
        url = f"{sim.rest_url}/api/v3/ticker/bookTicker"  # weight 4
        answers = [await _get(http, url) for _ in range(7)]
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
    assert sim.stats.rest_throttled == 2 and sim.stats.rest_banned == 3


async def test_the_window_and_the_ban_end() -> None:
    config = {"weight_limit": 4, "ban_after": 1, "ban_seconds": 0.3, "weight_window": 0.4}
    async with running(symbols=SYMBOLS, **config) as sim, aiohttp.ClientSession() as http:
        url = f"{sim.rest_url}/api/v3/ticker/bookTicker"
        statuses = [(await _get(http, url))[0] for _ in range(3)]
        assert statuses == [200, 429, 418]
        await asyncio.sleep(0.45)  # both the ban and the window are over
        status, _, headers = await _get(http, url)
        assert status == 200 and _weight(headers) <= 4


async def test_rest_book_ticker_matches_the_last_streamed_one() -> None:
    async with (
        running(symbols=SYMBOLS, rate=40.0) as sim,
        aiohttp.ClientSession() as http,
        http.ws_connect(stream_url(sim, "btcusdt@bookTicker", combined=False)) as ws,
    ):
        frames = await collect(ws, 0.2)
        assert len(frames) >= 3
        sim.set_rate("BTCUSDT", 0.0)  # freeze the book, then drain what is in flight
        while more := await collect(ws, 0.1):
            frames += more
        last = json.loads(frames[-1])
        base = f"{sim.rest_url}/api/v3"
        _, row, _ = await _get(http, f"{base}/ticker/bookTicker?symbol=BTCUSDT")
        _, book, _ = await _get(http, f"{base}/depth?symbol=BTCUSDT&limit=5")
    assert (row["bidPrice"], row["bidQty"], row["askPrice"], row["askQty"]) == (
        last["b"],
        last["B"],
        last["a"],
        last["A"],
    )
    assert book["lastUpdateId"] == last["u"]
    assert book["bids"][0] == [last["b"], last["B"]] and book["asks"][0] == [last["a"], last["A"]]


async def test_depth_last_update_id_is_comparable_with_stream_u() -> None:
    async with (
        running(symbols=SYMBOLS, rate=50.0) as sim,
        aiohttp.ClientSession() as http,
        http.ws_connect(stream_url(sim, "ethusdt@bookTicker", combined=False)) as ws,
    ):
        before = await read_json(ws)
        _, book, _ = await _get(http, f"{sim.rest_url}/api/v3/depth?symbol=ETHUSDT&limit=5")
        frames = [before] + [json.loads(f) for f in await collect(ws, 0.3)]
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
        ("/ticker/bookTicker?symbols=" + quote('["BTCUSDT","BTCUSDT"]'), -1101),
        ("/ticker/bookTicker?symbols=" + quote("BTCUSDT"), -1100),
        ("/ticker/bookTicker?symbol=btc%20usdt", -1100),
        ("/ticker/bookTicker?symbols=" + quote("[]"), -1102),
        ("/depth", -1102),
        ("/depth?symbol=BTCUSDT&limit=ten", -1100),
    ],
)
async def test_parameter_errors_have_binance_codes(query: str, code: int) -> None:
    async with running(symbols=SYMBOLS) as sim, aiohttp.ClientSession() as http:
        status, body, _ = await _get(http, f"{sim.rest_url}/api/v3{query}")
    assert status == 400 and body["code"] == code and body["msg"], body
