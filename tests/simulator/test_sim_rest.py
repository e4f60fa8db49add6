"""REST endpoints: answers, errors, and agreement with what the streams published."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from conftest import MakeSim
from sim_helpers import collect, next_json

from foxtrot_stream_binance.simulator import Simulator

ROW_KEYS = {"symbol", "bidPrice", "bidQty", "askPrice", "askQty"}


async def _get(http: aiohttp.ClientSession, url: str, **params: str) -> tuple[int, Any]:
    async with http.get(url, params=params) as r:
        assert "X-MBX-USED-WEIGHT-1M" in r.headers
        return r.status, await r.json(content_type=None)


async def test_ping_time_and_exchange_info(make_sim: MakeSim, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(statuses={"BNBUSDT": "BREAK"}, weight_limit=1200)
    assert await _get(http, f"{sim.rest_url}/api/v3/ping") == (200, {})
    status, body = await _get(http, f"{sim.rest_url}/api/v3/time")
    assert status == 200 and abs(body["serverTime"] - time.time() * 1000) < 5000
    status, info = await _get(http, f"{sim.rest_url}/api/v3/exchangeInfo")
    assert status == 200
    (weight,) = [r for r in info["rateLimits"] if r["rateLimitType"] == "REQUEST_WEIGHT"]
    assert weight == {
        "rateLimitType": "REQUEST_WEIGHT",
        "interval": "MINUTE",
        "intervalNum": 1,
        "limit": 1200,
    }
    statuses = {s["symbol"]: s["status"] for s in info["symbols"]}
    assert statuses == {"BTCUSDT": "TRADING", "ETHUSDT": "TRADING", "BNBUSDT": "BREAK"}
    btc = info["symbols"][0]
    assert (btc["baseAsset"], btc["quoteAsset"]) == ("BTC", "USDT")
    status, one = await _get(http, f"{sim.rest_url}/api/v3/exchangeInfo", symbol="ETHUSDT")
    assert [s["symbol"] for s in one["symbols"]] == ["ETHUSDT"]


async def test_book_ticker_single_several_and_all(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    url = f"{sim.rest_url}/api/v3/ticker/bookTicker"
    status, row = await _get(http, url, symbol="BTCUSDT")
    assert status == 200 and set(row) == ROW_KEYS and row["symbol"] == "BTCUSDT"
    assert Decimal(row["bidPrice"]) < Decimal(row["askPrice"])
    status, rows = await _get(http, url, symbols='["ETHUSDT","BTCUSDT"]')  # URL-encoded
    assert status == 200 and [r["symbol"] for r in rows] == ["ETHUSDT", "BTCUSDT"]
    status, rows = await _get(http, url)
    assert status == 200 and [r["symbol"] for r in rows] == ["BTCUSDT", "ETHUSDT", "BNBUSDT"]
    status, prices = await _get(http, f"{sim.rest_url}/api/v3/ticker/price")
    assert status == 200 and all(set(p) == {"symbol", "price"} for p in prices)


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"symbol": "NOPEUSDT"}, -1121),
        ({"symbols": '["BTCUSDT","NOPEUSDT"]'}, -1121),  # one bad symbol fails the batch
        ({"symbol": "btcusdt"}, -1100),
        ({"symbols": "BTCUSDT"}, -1100),
        ({"symbols": "[]"}, -1102),
        ({"symbols": '["BTCUSDT","BTCUSDT"]'}, -1101),
        ({"symbol": "BTCUSDT", "symbols": '["ETHUSDT"]'}, -1128),
    ],
)
async def test_book_ticker_errors(
    sim: Simulator, http: aiohttp.ClientSession, params: dict[str, str], code: int
) -> None:
    status, body = await _get(http, f"{sim.rest_url}/api/v3/ticker/bookTicker", **params)
    assert status == 400 and body["code"] == code and isinstance(body["msg"], str)
    if code == -1121:
        assert body == {"code": -1121, "msg": "Invalid symbol."}


async def test_depth(sim: Simulator, http: aiohttp.ClientSession) -> None:
    url = f"{sim.rest_url}/api/v3/depth"
    status, book = await _get(http, url, symbol="ETHUSDT", limit="7")
    assert status == 200 and set(book) == {"lastUpdateId", "bids", "asks"}
    assert len(book["bids"]) == len(book["asks"]) == 7
    assert all(isinstance(p, str) and isinstance(q, str) for p, q in book["bids"] + book["asks"])
    status, big = await _get(http, url, symbol="BTCUSDT", limit="9000")
    assert status == 200 and len(big["asks"]) == 5000  # capped, as documented
    assert (await _get(http, url))[1]["code"] == -1102
    assert (await _get(http, url, symbol="BTCUSDT", limit="x"))[1]["code"] == -1100
    assert (await _get(http, url, symbol="NOPEUSDT"))[1]["code"] == -1121


async def test_unknown_path_still_reports_the_weight(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{sim.rest_url}/api/v3/nothing") as r:
        assert r.status == 404 and r.headers["X-MBX-USED-WEIGHT-1M"] == "1"


async def test_rest_answers_the_state_the_streams_last_published(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    url = f"{sim.ws_url}/stream?streams=btcusdt@bookTicker/btcusdt@depth20@100ms"
    async with http.ws_connect(url) as ws:
        frames = [await next_json(ws)]
        while len({f["stream"] for f in frames}) < 2:
            frames.append(await next_json(ws))
        sim.set_rate("BTCUSDT", 0.0)  # freeze the path, then read what was sent
        frames += [m.json() for m in await collect(ws, 0.25) if m.type is aiohttp.WSMsgType.TEXT]
    last = [f["data"] for f in frames if f["stream"] == "btcusdt@bookTicker"][-1]
    depths = [f["data"] for f in frames if f["stream"].startswith("btcusdt@depth")]
    _status, row = await _get(http, f"{sim.rest_url}/api/v3/ticker/bookTicker", symbol="BTCUSDT")
    _status, book = await _get(http, f"{sim.rest_url}/api/v3/depth", symbol="BTCUSDT", limit="20")
    assert (row["bidPrice"], row["bidQty"], row["askPrice"], row["askQty"]) == (
        last["b"],
        last["B"],
        last["a"],
        last["A"],
    )
    assert book["lastUpdateId"] == last["u"]  # comparable with the stream's u
    assert book == depths[-1]  # the partial-depth stream and REST agree too
    assert row == sim.book("BTCUSDT")
