"""Limits: incoming messages per connection, connection attempts, REST request weight."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from conftest import MakeSim
from sim_helpers import ask, collect, ended, reply, wait_until

from foxtrot_stream_binance.simulator import Simulator

WINDOW = 0.3
"""The 1-second incoming window, scaled down."""


@pytest.fixture
async def sim(make_sim: MakeSim) -> Simulator:
    return await make_sim(incoming_window=WINDOW, rate=0.0, ping_interval=10.0, pong_timeout=30.0)


Send = Callable[[aiohttp.ClientWebSocketResponse, int], Awaitable[None]]


async def _text(ws: aiohttp.ClientWebSocketResponse, i: int) -> None:
    await ws.send_str(f'{{"method":"LIST_SUBSCRIPTIONS","id":{i}}}')


async def _ping(ws: aiohttp.ClientWebSocketResponse, i: int) -> None:
    await ws.ping(str(i).encode())


async def _pong(ws: aiohttp.ClientWebSocketResponse, _i: int) -> None:
    await ws.pong(b"")


@pytest.mark.parametrize("send", [_text, _ping, _pong], ids=["text", "ping", "pong"])
async def test_a_sixth_message_within_the_window_closes_with_1008(
    sim: Simulator, http: aiohttp.ClientSession, send: Send
) -> None:
    async with http.ws_connect(f"{sim.ws_url}/ws", autoping=False) as ws:
        for i in range(6):
            await send(ws, i)
        end = await ended(ws)
        assert end.type is aiohttp.WSMsgType.CLOSE
        assert (end.data, end.extra) == (1008, "Too many requests")
    await wait_until(lambda: not sim.clients)
    conn = sim.stats.connections[1]
    assert (conn.messages_received, conn.max_per_second) == (6, 6)
    assert conn.close_reason == "too many requests"
    assert sim.stats.rate_limit_disconnects == 1


async def test_five_per_window_is_allowed(sim: Simulator, http: aiohttp.ClientSession) -> None:
    async with http.ws_connect(f"{sim.ws_url}/ws") as ws:
        for i in range(5):
            await _text(ws, i)
        assert len(await collect(ws, 0.1)) == 5
        await asyncio.sleep(WINDOW)
        for i in range(4):
            await _text(ws, i)
        assert [(await reply(ws))["id"] for _ in range(4)] == [0, 1, 2, 3]
        assert await ask(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 9}) == {"result": [], "id": 9}
    conn = sim.stats.connections[1]
    assert conn.messages_received == 10 and conn.max_per_second == 5
    assert sim.stats.max_incoming_per_second == 5 and sim.stats.rate_limit_disconnects == 0


async def test_connection_attempts_are_limited_and_counted(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(attempt_limit=3, attempt_window=60.0, rate=0.0)
    for _ in range(3):
        async with http.ws_connect(f"{sim.ws_url}/ws"):
            pass
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        await http.ws_connect(f"{sim.ws_url}/ws")
    assert err.value.status == 429
    st = sim.stats
    assert (st.connection_attempts, st.attempts_over_limit, st.connections_opened) == (4, 1, 3)
    assert st.attempts_between(st.attempt_times[0], st.attempt_times[-1]) == 3
    assert st.attempts_between(st.attempt_times[-1]) == 1


async def _get(http: aiohttp.ClientSession, url: str) -> tuple[int, int, dict[str, str], object]:
    async with http.get(url) as r:
        return r.status, int(r.headers["X-MBX-USED-WEIGHT-1M"]), dict(r.headers), await r.json()


async def test_weight_limit_gives_429_then_418(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(weight_limit=10, ban_after=2, ban_seconds=120.0)
    url = f"{sim.rest_url}/api/v3/ticker/bookTicker?symbol=BTCUSDT"  # weight 2
    used = [(await _get(http, url))[:2] for _ in range(5)]
    assert used == [(200, 2), (200, 4), (200, 6), (200, 8), (200, 10)]
    status, weight, headers, body = await _get(http, url)
    assert (status, weight) == (429, 12)
    assert 1 <= int(headers["Retry-After"]) <= 60
    assert body == {
        "code": -1003,
        "msg": "Too much request weight used; current limit is 10 request weight per 1 MINUTE. "
        "Please use WebSocket Streams for live updates to avoid polling the API.",
    }
    assert (await _get(http, url))[0] == 429  # the second 429 ignored …
    status, _w, headers, body = await _get(http, url)  # … and a third request: banned
    assert status == 418 and headers["Retry-After"] == "120"
    assert isinstance(body, dict) and body["code"] == -1003
    assert body["msg"].startswith("Way too much request weight used; IP banned until ")
    assert (await _get(http, f"{sim.rest_url}/api/v3/ping"))[0] == 418  # banned for everything
    assert (sim.stats.rest_throttled, sim.stats.rest_banned) == (2, 2)


async def test_the_weight_window_rolls_over(make_sim: MakeSim, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(weight_limit=4, weight_window=0.5)
    url = f"{sim.rest_url}/api/v3/ticker/bookTicker"  # all symbols: weight 4
    assert (await _get(http, url))[:2] == (200, 4)
    status, _w, headers, _b = await _get(http, url)
    assert status == 429
    await asyncio.sleep(float(headers["Retry-After"]))
    assert (await _get(http, url))[:2] == (200, 4)


@pytest.mark.parametrize(
    ("path", "weight"),
    [
        ("/api/v3/ping", 1),
        ("/api/v3/time", 1),
        ("/api/v3/exchangeInfo", 20),
        ("/api/v3/ticker/bookTicker?symbol=BTCUSDT", 2),
        ('/api/v3/ticker/bookTicker?symbols=["BTCUSDT","ETHUSDT"]', 4),
        ("/api/v3/ticker/bookTicker", 4),
        ("/api/v3/ticker/price?symbol=BTCUSDT", 2),
        ("/api/v3/ticker/price", 4),
        ("/api/v3/depth?symbol=BTCUSDT", 5),
        ("/api/v3/depth?symbol=BTCUSDT&limit=100", 5),
        ("/api/v3/depth?symbol=BTCUSDT&limit=101", 25),
        ("/api/v3/depth?symbol=BTCUSDT&limit=500", 25),
        ("/api/v3/depth?symbol=BTCUSDT&limit=1000", 50),
        ("/api/v3/depth?symbol=BTCUSDT&limit=5000", 250),
        ("/api/v3/ticker/bookTicker?symbol=NOPE", 2),  # errors cost their weight too
    ],
)
async def test_documented_request_weights(
    sim: Simulator, http: aiohttp.ClientSession, path: str, weight: int
) -> None:
    _status, used, _h, _b = await _get(http, f"{sim.rest_url}{path}")
    assert used == weight
