"""Server pings with a payload, the pong deadline, and the connection lifetime."""

from __future__ import annotations

import time

import aiohttp
from conftest import MakeSim
from sim_helpers import collect, ended, wait_until

from foxtrot_stream_binance.simulator import Simulator

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
        started = time.monotonic()
        while time.monotonic() - started < PING + PONG_TIMEOUT + 0.1:
            msg = await ws.receive(timeout=1.0)
            assert msg.type is aiohttp.WSMsgType.PING, msg
            payloads.append(msg.data)
            await ws.pong(msg.data)
        assert not ws.closed
    assert all(payloads) and len(set(payloads)) == len(payloads)  # non-empty, never repeated
    conn = sim.stats.connections[1]
    assert conn.pings_sent >= 4 and conn.pongs_matched >= 4


async def test_no_pong_disconnects_after_the_timeout(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await _fast(make_sim)
    async with http.ws_connect(f"{sim.ws_url}/ws/btcusdt@bookTicker", autoping=False) as ws:
        started = time.monotonic()
        end = await ended(ws)
        elapsed = time.monotonic() - started
    assert end.type is aiohttp.WSMsgType.CLOSE and (end.data, end.extra) == (1008, "Pong timeout")
    assert PING + PONG_TIMEOUT - 0.02 <= elapsed < PING + PONG_TIMEOUT + 0.25
    await wait_until(lambda: not sim.clients)
    assert sim.stats.connections[1].close_reason == "pong timeout"
    assert sim.stats.pong_timeouts == 1


async def test_unsolicited_or_wrong_pongs_do_not_keep_it_alive(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await _fast(make_sim, rate=0.0)
    async with http.ws_connect(f"{sim.ws_url}/ws", autoping=False) as ws:
        started = time.monotonic()
        while not ws.closed and time.monotonic() - started < 1.5:
            await ws.pong(b"")  # unsolicited, as the docs allow
            msg = (await collect(ws, 0.05) or [None])[-1]
            if msg is not None and msg.type is aiohttp.WSMsgType.PING:
                await ws.pong(b"not-" + msg.data)
            if msg is not None and msg.type is aiohttp.WSMsgType.CLOSE:
                break
        elapsed = time.monotonic() - started
    assert elapsed < PING + PONG_TIMEOUT + 0.3
    conn = sim.stats.connections[1]
    assert conn.close_reason == "pong timeout"
    assert conn.pongs_received >= 4 and conn.pongs_matched == 0


async def test_an_autoping_client_stays_connected(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await _fast(make_sim)
    async with http.ws_connect(f"{sim.ws_url}/ws/btcusdt@bookTicker") as ws:
        messages = await collect(ws, PING + PONG_TIMEOUT + 0.1)
        assert not ws.closed and len(messages) > 10
    assert sim.stats.connections[1].pongs_matched >= 3
    assert sim.stats.pong_timeouts == 0


async def test_the_connection_lifetime_is_cut_at_the_mark(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(lifetime=0.3)
    async with http.ws_connect(f"{sim.ws_url}/stream?streams=btcusdt@trade") as ws:
        started = time.monotonic()
        end = await ended(ws)
        elapsed = time.monotonic() - started
    assert end.type is aiohttp.WSMsgType.CLOSE and end.data == 1000
    assert 0.28 <= elapsed < 0.5
    await wait_until(lambda: not sim.clients)
    assert sim.stats.connections[1].close_reason == "lifetime"
