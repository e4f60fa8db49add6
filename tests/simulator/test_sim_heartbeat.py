"""Server pings with a payload, the pong deadline, and the connection lifetime."""

from __future__ import annotations

import time

import aiohttp
from conftest import MakeSim

from foxtrot_stream_binance.simulator import Simulator

from simwire import collect, eventually, messages, stream_url, until_end

PING, PONG_TIMEOUT = 0.1, 0.3


async def _fast(make_sim: MakeSim, **overrides: object) -> Simulator:
    options = {"ping_interval": PING, "pong_timeout": PONG_TIMEOUT, "incoming_limit": 100}
    return await make_sim(**(options | overrides))


async def test_pings_carry_a_payload_and_echoing_it_keeps_the_connection(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await _fast(make_sim, rate=0.0)
    payloads = []
    async with http.ws_connect(f"{sim.ws_url}/ws", autoping=False) as ws:
        # five answered pings span 0.5 s, past PONG_TIMEOUT: echoing them kept it open (counted
        # in pings, not timed, so a late test machine cannot cut the count short)
        while len(payloads) < 5:
            msg = await ws.receive(timeout=1.0)
            assert msg.type is aiohttp.WSMsgType.PING, msg
            payloads.append(msg.data)
            await ws.pong(msg.data)
        assert not ws.closed
    assert all(payloads) and len(set(payloads)) == len(payloads)  # non-empty, never repeated
    conn = sim.stats.connections[1]
    assert conn.pings_sent >= 5 and conn.pongs_matched >= 4  # the last pong may be in flight


async def test_no_pong_disconnects_after_the_timeout(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await _fast(make_sim)
    async with http.ws_connect(f"{sim.ws_url}/ws/btcusdt@bookTicker", autoping=False) as ws:
        started = time.monotonic()
        ending = await until_end(ws)
    elapsed = ending.at - started
    assert ending.clean and (ending.code, ending.reason) == (1008, "Pong timeout")
    assert PING + PONG_TIMEOUT - 0.02 <= elapsed < PING + PONG_TIMEOUT + 1.0
    assert ending.pings >= 3 and len(ending.frames) > 5  # data flowed until the end
    await eventually(lambda: not sim.clients)
    assert sim.stats.connections[1].close_reason == "pong timeout"
    assert sim.stats.pong_timeouts == 1
    conn = sim.stats.connections[1]
    assert conn.pongs_received == conn.pongs_matched == 0


async def test_unsolicited_or_wrong_pongs_do_not_keep_it_alive(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await _fast(make_sim, rate=0.0)
    async with http.ws_connect(f"{sim.ws_url}/ws", autoping=False) as ws:
        started = time.monotonic()
        while not ws.closed and time.monotonic() - started < 1.5:
            await ws.pong(b"")  # unsolicited, as the docs allow
            msg = (await messages(ws, 0.05) or [None])[-1]
            if msg is not None and msg.type is aiohttp.WSMsgType.PING:
                await ws.pong(b"not-" + msg.data)
            if msg is not None and msg.type is aiohttp.WSMsgType.CLOSE:
                break
        elapsed = time.monotonic() - started
    assert elapsed < PING + PONG_TIMEOUT + 1.0  # the pongs did not keep it alive
    conn = sim.stats.connections[1]
    assert conn.close_reason == "pong timeout"
    assert conn.pongs_received >= 4 and conn.pongs_matched == 0


async def test_answering_only_the_first_ping_is_not_enough(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await _fast(make_sim, rate=0.0)
    async with http.ws_connect(f"{sim.ws_url}/ws", autoping=False) as ws:
        first = await ws.receive(timeout=1.0)
        assert first.type is aiohttp.WSMsgType.PING
        await ws.pong(first.data)
        answered = time.monotonic()
        await eventually(lambda: sim.stats.connections[1].pongs_matched == 1)
        ending = await until_end(ws)
    # the second ping (PING after the first) goes unanswered for PONG_TIMEOUT
    assert PING + PONG_TIMEOUT - 0.05 <= ending.at - answered < PING + PONG_TIMEOUT + 1.0
    assert sim.stats.connections[1].close_reason == "pong timeout"


async def test_the_connection_lifetime_is_cut_at_the_mark(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(lifetime=0.3)
    async with http.ws_connect(stream_url(sim, "btcusdt@bookTicker")) as ws:
        started = time.monotonic()
        ending = await until_end(ws)
    assert ending.clean and ending.code == 1000
    assert 0.28 <= ending.at - started < 1.5
    assert len(ending.frames) >= 5  # data flowed until the end
    await eventually(lambda: not sim.clients)
    assert sim.stats.connections[1].close_reason == "lifetime"
    assert sim.stats.pong_timeouts == 0
    # the limit is per connection: a new one is served
    async with http.ws_connect(stream_url(sim, "btcusdt@bookTicker")) as ws:
        assert len(await collect(ws, 0.1, at_least=2)) >= 2
