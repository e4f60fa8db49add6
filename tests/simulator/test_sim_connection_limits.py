"""Per-connection limits: 5 incoming messages a second, the pong timeout, the lifetime, and
connection attempts per IP."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
from simwire import collect, eventually, read_json, running, stream_url, until_end


async def _flood(ws: aiohttp.ClientWebSocketResponse, kind: str, count: int) -> None:
    for i in range(count):
        if kind == "text":
            await ws.send_str(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
        elif kind == "ping":
            await ws.ping(b"p%d" % i)
        else:
            await ws.pong(b"")  # unsolicited pongs count too


@pytest.mark.parametrize("kind", ["text", "ping", "pong"])
async def test_a_sixth_message_within_a_second_closes_1008(kind: str) -> None:
    async with (
        running(symbols=("BTCUSDT",), rate=20.0) as sim,
        aiohttp.ClientSession() as http,
        http.ws_connect(stream_url(sim, "btcusdt@bookTicker")) as ws,
    ):
        await _flood(ws, kind, 6)
        ending = await until_end(ws)
    assert ending.clean
    assert (ending.code, ending.reason) == (1008, "Too many requests")
    assert sim.stats.rate_limit_disconnects == 1
    conn = sim.stats.connections[1]
    assert conn.close_reason == "too many requests"
    assert conn.messages_received == 6 and conn.max_per_second == 6


async def test_five_messages_a_second_are_fine_and_the_window_slides() -> None:
    async with (
        # no pings in the way: the pongs answering them would count too
        running(symbols=("BTCUSDT",), incoming_window=0.3, ping_interval=10.0) as sim,
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{sim.ws_url}/ws") as ws,
    ):
        for burst in range(2):
            for i in range(5):
                await ws.send_str(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
            answers = [await read_json(ws) for _ in range(5)]
            assert [a["id"] for a in answers] == list(range(5)), (burst, answers)
            await asyncio.sleep(0.35)  # the window has slid past this burst
        assert not ws.closed
    assert sim.stats.rate_limit_disconnects == 0
    assert sim.stats.connections[1].max_per_second == 5


async def test_a_client_that_stops_answering_pings_is_cut_after_the_pong_timeout() -> None:
    async with (
        running(symbols=("BTCUSDT",), rate=20.0, ping_interval=0.2) as sim,  # 0.6 s to answer
        aiohttp.ClientSession() as http,
        http.ws_connect(stream_url(sim, "btcusdt@bookTicker"), autoping=False) as ws,
    ):
        opened = time.monotonic()
        ending = await until_end(ws, within=3.0)
    lasted = ending.at - opened
    # the first ping goes at 0.2 s; nothing answered it by 0.8 s
    assert 0.75 <= lasted < 1.3, lasted
    assert ending.pings >= 3 and len(ending.frames) > 5  # data flowed until the end
    assert sim.stats.pong_timeouts == 1
    conn = sim.stats.connections[1]
    assert conn.close_reason == "pong timeout"
    assert conn.pongs_received == conn.pongs_matched == 0


@pytest.mark.parametrize("payload", [b"", b"not-the-ping-payload"])
async def test_pongs_that_echo_no_ping_keep_nothing_alive(payload: bytes) -> None:
    async with (
        running(symbols=("BTCUSDT",), rate=0.0, ping_interval=0.2) as sim,
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{sim.ws_url}/ws", autoping=False) as ws,
    ):
        opened = time.monotonic()
        pongs = 0
        ending = None
        while ending is None:
            try:
                msg = await ws.receive(timeout=0.25)
            except TimeoutError:
                msg = None
            if msg is not None and msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                ending = time.monotonic()
            elif msg is None or msg.type is aiohttp.WSMsgType.PING:
                await ws.pong(payload)  # at most ~4 a second: under the incoming limit
                pongs += 1
            assert time.monotonic() - opened < 3.0, "not timed out"
    assert 0.75 <= ending - opened < 1.3
    conn = sim.stats.connections[1]
    assert conn.close_reason == "pong timeout"
    assert conn.pongs_received >= 3 and conn.pongs_matched == 0


async def test_answering_only_the_first_ping_is_not_enough() -> None:
    async with (
        running(symbols=("BTCUSDT",), rate=0.0, ping_interval=0.2) as sim,
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{sim.ws_url}/ws", autoping=False) as ws,
    ):
        first = await ws.receive(timeout=1.0)
        assert first.type is aiohttp.WSMsgType.PING
        await ws.pong(first.data)
        answered = time.monotonic()
        await eventually(lambda: sim.stats.connections[1].pongs_matched == 1)
        ending = await until_end(ws, within=3.0)
    # the second ping (0.2 s after the first) goes unanswered for 0.6 s
    assert 0.7 <= ending.at - answered < 1.3
    assert sim.stats.connections[1].close_reason == "pong timeout"


async def test_the_connection_lifetime_closes_the_connection() -> None:
    async with (
        running(symbols=("BTCUSDT",), rate=20.0, lifetime=1.0, ping_interval=0.3) as sim,
        aiohttp.ClientSession() as http,
    ):
        async with http.ws_connect(stream_url(sim, "btcusdt@bookTicker")) as ws:
            opened = time.monotonic()
            ending = await until_end(ws, within=3.0)
        assert ending.clean and ending.code == 1000
        assert 0.95 <= ending.at - opened < 1.4
        assert len(ending.frames) >= 10
        assert sim.stats.connections[1].close_reason == "lifetime"
        assert sim.stats.pong_timeouts == 0
        # the limit is per connection: a new one is served
        async with http.ws_connect(stream_url(sim, "btcusdt@bookTicker")) as ws:
            assert len(await collect(ws, 0.2)) >= 2


async def test_connection_attempts_per_window_are_limited() -> None:
    async with (
        running(symbols=("BTCUSDT",), attempt_limit=2, attempt_window=0.3) as sim,
        aiohttp.ClientSession() as http,
    ):
        started = time.monotonic()
        for _ in range(2):
            async with http.ws_connect(f"{sim.ws_url}/ws"):
                pass
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{sim.ws_url}/ws")
        assert refused.value.status == 429
        assert refused.value.headers is not None and "Retry-After" in refused.value.headers
        assert sim.stats.attempts_over_limit == 1
        # once the window has passed, an attempt is admitted again
        await asyncio.sleep(max(0.0, started + 0.4 - time.monotonic()))
        async with http.ws_connect(f"{sim.ws_url}/ws") as ws:
            assert not ws.closed
        assert sim.stats.connections_opened == 3


async def test_honouring_retry_after_gets_the_next_attempt_in() -> None:
    # a window over 1 s, so that Retry-After's whole seconds do not hide an early answer
    async with (
        running(symbols=("BTCUSDT",), attempt_limit=2, attempt_window=1.2) as sim,
        aiohttp.ClientSession() as http,
    ):
        first = time.monotonic()
        async with http.ws_connect(f"{sim.ws_url}/ws"):
            pass
        await asyncio.sleep(0.4)
        async with http.ws_connect(f"{sim.ws_url}/ws"):
            pass
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{sim.ws_url}/ws")
        assert refused.value.status == 429 and refused.value.headers is not None
        retry_after = refused.value.headers["Retry-After"]
        assert retry_after.isdigit(), retry_after
        # not before the first attempt leaves the window
        assert time.monotonic() + int(retry_after) >= first + 1.2, retry_after
        await asyncio.sleep(int(retry_after))
        async with http.ws_connect(f"{sim.ws_url}/ws") as ws:
            assert not ws.closed
