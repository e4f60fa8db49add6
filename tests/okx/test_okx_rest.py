"""The adapter's REST side: one request per poll, rate limits, instruments, the server clock;
against the simulator, and against answers shaped as OKX's documentation shows them."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from foxtrot_stream import HttpUrl, PollError, RateLimited, TransportKind
from foxtrot_stream_okx.adapter import OkxAdapter
from foxtrot_stream_okx.settings import OkxSettings
from foxtrot_stream_okx.simulator import OkxSimulator

Env = tuple[OkxSimulator, OkxAdapter, aiohttp.ClientSession]


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    sim = OkxSimulator(("BTC-USDT", "ETH-USDT", "SOL-USDT"), rate=5.0, suspended=("LUNA-USDT",))
    async with sim, aiohttp.ClientSession() as session:
        yield sim, OkxAdapter(OkxSettings(rest_url=HttpUrl(sim.rest_url))), session


async def test_one_request_polls_any_number_of_symbols(env: Env) -> None:
    sim, adapter, session = env
    result = await adapter.poll(session, ["BTC-USDT", "ETH-USDT"])
    assert sim.stats.rest_requests == 1
    assert {t.symbol for t in result.ticks} == {"BTC-USDT", "ETH-USDT"}  # SOL-USDT left out
    for t in result.ticks:
        assert t.transport is TransportKind.HTTP and t.seq is None and t.exchange_ts is None
        assert t.bid < t.ask and t.last is not None and result.requested_ns <= t.received_ts
    await adapter.poll(session, ["BTC-USDT", "ETH-USDT", "SOL-USDT"])
    assert sim.stats.rest_requests == 2


async def test_a_rate_limit_is_a_retry_after_not_an_error(env: Env) -> None:
    sim, adapter, session = env
    sim.rate_limit(1)
    limited = await adapter.poll(session, ["BTC-USDT"])
    assert (limited.ticks, limited.retry_after, limited.banned) == ((), 2.0, False)
    assert len((await adapter.poll(session, ["BTC-USDT"])).ticks) == 1
    sim.rate_limit(1)
    with pytest.raises(RateLimited, match="50011"):
        await adapter.server_time(session)


async def test_a_server_error_is_a_poll_error(env: Env) -> None:
    sim, adapter, session = env
    sim.rate_limit(1, status=503)
    with pytest.raises(PollError, match="503"):
        await adapter.poll(session, ["BTC-USDT"])


async def test_symbols_are_checked_against_the_instrument_list(env: Env) -> None:
    _, adapter, session = env
    check = await adapter.validate_symbols(session, ["BTC-USDT", "LUNA-USDT", "BTCUSDT"])
    assert check.valid == ("BTC-USDT",)
    assert "state suspend" in check.invalid["LUNA-USDT"]
    assert "not an OKX SPOT instrument" in check.invalid["BTCUSDT"]
    assert "BTC-USDT" in check.invalid["BTCUSDT"]  # says how OKX writes it


async def test_instruments_and_trading_symbols(env: Env) -> None:
    sim, adapter, session = env
    instruments = {i.symbol: i for i in await adapter.instruments(session)}
    btc = instruments["BTC-USDT"]
    assert btc.trading and (btc.price_tick, btc.min_qty, btc.lot_size) == (0.1, 1e-05, 1e-08)
    assert not instruments["LUNA-USDT"].trading and instruments["LUNA-USDT"].status == "suspend"
    assert await adapter.trading_symbols(session) == ("BTC-USDT", "ETH-USDT", "SOL-USDT")
    assert sim.stats.rest_requests == 1  # the list is kept


async def test_the_server_clock(env: Env) -> None:
    _, adapter, session = env
    assert abs(await adapter.server_time(session) - time.time() * 1000) < 5000


# Answers shaped as the documentation's examples (numbers as strings, OKX's envelope).
DOC_TICKERS = {
    "code": "0",
    "msg": "",
    "data": [
        {"instType": "SPOT", "instId": "LTC-USDT", "last": "9999.99", "lastSz": "1",
         "askPx": "9999.99", "askSz": "11", "bidPx": "8888.88", "bidSz": "5", "open24h": "9000",
         "high24h": "10000", "low24h": "8888.88", "volCcy24h": "2222", "vol24h": "2222",
         "sodUtc0": "0.1", "sodUtc8": "0.1", "ts": "1597026383085"},
        {"instType": "SPOT", "instId": "BCH-USDT", "last": "5000", "lastSz": "1", "askPx": "",
         "askSz": "", "bidPx": "", "bidSz": "", "ts": "1597026383085"},
    ],
}  # fmt: skip
DOC_TIME = {"code": "0", "msg": "", "data": [{"ts": "1597026383085"}]}


async def test_answers_shaped_as_the_documentation_s() -> None:
    app = web.Application()
    app.router.add_get("/api/v5/market/tickers", _answer(DOC_TICKERS))
    app.router.add_get("/api/v5/public/time", _answer(DOC_TIME))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    adapter = OkxAdapter(OkxSettings(rest_url=HttpUrl(f"http://127.0.0.1:{port}")))
    try:
        async with aiohttp.ClientSession() as session:
            result = await adapter.poll(session, ["LTC-USDT", "BCH-USDT"])
            assert await adapter.server_time(session) == 1597026383085
    finally:
        await runner.cleanup()
    [tick] = result.ticks  # BCH-USDT has no book (empty strings): no tick, no error
    assert (tick.symbol, tick.bid, tick.bid_qty, tick.ask, tick.ask_qty, tick.last) == (
        "LTC-USDT", 8888.88, 5.0, 9999.99, 11.0, 9999.99,
    )  # fmt: skip


def _answer(body: object) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(_: web.Request) -> web.Response:
        return web.json_response(body)

    return handle
