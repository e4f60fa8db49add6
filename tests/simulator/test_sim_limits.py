"""Limits on WebSockets: incoming messages per connection and connection attempts per IP.
The REST request weight has its tests with the REST endpoints."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from conftest import MakeSim

from foxtrot_stream_binance.simulator import Simulator

from simwire import ask, collect, eventually, reply, until_end

WINDOW = 0.2
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
        ending = await until_end(ws)
        assert ending.clean
        assert (ending.code, ending.reason) == (1008, "Too many requests")
    await eventually(lambda: not sim.clients)
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


async def test_connection_attempts_are_limited_counted_and_admitted_after_the_window(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(attempt_limit=3, attempt_window=0.3, rate=0.0)
    for _ in range(3):
        async with http.ws_connect(f"{sim.ws_url}/ws"):
            pass
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        await http.ws_connect(f"{sim.ws_url}/ws")
    assert err.value.status == 429
    assert err.value.headers is not None and "Retry-After" in err.value.headers
    st = sim.stats
    assert (st.connection_attempts, st.attempts_over_limit, st.connections_opened) == (4, 1, 3)
    assert st.attempts_between(st.attempt_times[0], st.attempt_times[-1]) == 3
    assert st.attempts_between(st.attempt_times[-1]) == 1
    # once the first attempts have left the window, an attempt is admitted again
    await asyncio.sleep(max(0.0, st.attempt_times[0] + 0.32 - time.monotonic()))
    async with http.ws_connect(f"{sim.ws_url}/ws") as ws:
        assert not ws.closed
    assert st.connections_opened == 4


async def test_honouring_retry_after_gets_the_next_attempt_in(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    # a window over 1 s, so that Retry-After's whole seconds do not hide an early answer
    sim = await make_sim(attempt_limit=2, attempt_window=1.05, rate=0.0)
    first = time.monotonic()
    async with http.ws_connect(f"{sim.ws_url}/ws"):
        pass
    await asyncio.sleep(0.1)  # under 1 s left of the window: Retry-After 1
    async with http.ws_connect(f"{sim.ws_url}/ws"):
        pass
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(f"{sim.ws_url}/ws")
    assert refused.value.status == 429 and refused.value.headers is not None
    retry_after = refused.value.headers["Retry-After"]
    assert retry_after == "1", retry_after  # whole seconds, rounded up
    # not before the first attempt leaves the window
    assert time.monotonic() + int(retry_after) >= first + 1.05, retry_after
    await asyncio.sleep(int(retry_after))
    async with http.ws_connect(f"{sim.ws_url}/ws") as ws:
        assert not ws.closed
