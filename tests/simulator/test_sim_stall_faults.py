"""The faults behind silent client stalls, seen from real clients: slow handshakes, flapping
connections that stream a while before the drop, restarted and jumped ids, refused
subscriptions, and an exchange that accepts new connections but stays silent."""

from __future__ import annotations

import asyncio
import json
import math
import time

import aiohttp
import pytest

from foxtrot_stream_binance.simulator import Simulator

from simwire import (
    collect,
    eventually,
    request,
    running,
    stream_url,
    strictly_increasing,
    until_end,
    well_formed,
)

SYMBOLS = ("BTCUSDT", "ETHUSDT")
BOOKS = ("btcusdt@bookTicker", "ethusdt@bookTicker")


async def _open_after(http: aiohttp.ClientSession, url: str) -> tuple[float, str]:
    """Seconds from asking to the open connection, and its first frame."""
    started = time.monotonic()
    async with http.ws_connect(url) as ws:
        opened = time.monotonic() - started
        msg = await ws.receive(timeout=1.0)
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    return opened, msg.data


# --- slow_handshake -------------------------------------------------------------------------


async def test_slow_handshake_holds_each_upgrade_for_the_delay() -> None:
    async with running(symbols=SYMBOLS, rate=50.0) as sim, aiohttp.ClientSession() as http:
        sim.slow_handshake(0.5, 0.2)
        opened, first = await _open_after(http, stream_url(sim, *BOOKS))
        assert 0.19 <= opened < 0.35
        assert '"stream":' in first  # then it streams as usual
        # a second connection asked while the first is held is held as long, not queued
        url = stream_url(sim, BOOKS[0], combined=False)
        times = await asyncio.gather(_open_after(http, url), _open_after(http, url))
        assert all(0.19 <= t < 0.35 for t, _ in times), times
        assert sim.stats.held_handshakes == 3 and sim.stats.connections_opened == 3
        await asyncio.sleep(max(0.0, sim.faults.slow_handshake_until - time.monotonic()))
        opened, _ = await _open_after(http, url)
        assert opened < 0.1  # over
    assert sim.stats.held_handshakes == 3
    assert [w for _t, w in sim.faults.log] == ["slow_handshake(0.5, 0.2)"]


async def test_slow_handshake_without_a_delay_holds_until_the_window_ends() -> None:
    async with running(symbols=SYMBOLS, rate=50.0) as sim, aiohttp.ClientSession() as http:
        sim.slow_handshake(0.25)
        ends = sim.faults.slow_handshake_until
        await asyncio.sleep(0.05)
        started = time.monotonic()
        opened, _ = await _open_after(http, stream_url(sim, *BOOKS))
        assert ends - 0.005 <= started + opened < ends + 0.1


async def test_clear_lets_held_handshakes_go_and_stop_refuses_them() -> None:
    async with aiohttp.ClientSession() as http:
        async with running(symbols=SYMBOLS, rate=50.0) as sim:
            sim.slow_handshake(5.0, 5.0)
            held = asyncio.create_task(_open_after(http, stream_url(sim, *BOOKS)))
            await asyncio.sleep(0.1)
            assert not held.done()
            sim.clear()
            opened, _ = await held
            assert 0.09 <= opened < 0.25
            sim.slow_handshake(5.0, 5.0)
            held = asyncio.create_task(http.ws_connect(f"{sim.ws_url}/ws"))
            await asyncio.sleep(0.1)
            stopping = time.monotonic()
        assert time.monotonic() - stopping < 0.3  # a held upgrade does not hold up the stop
        try:
            await held
        except aiohttp.WSServerHandshakeError as exc:
            assert exc.status == 503
        else:
            raise AssertionError("an upgrade held across the stop was opened")


async def test_a_client_that_gives_up_during_the_hold_is_not_opened(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running(symbols=SYMBOLS, rate=50.0) as sim, aiohttp.ClientSession() as http:
        sim.slow_handshake(0.5, 0.15)
        try:
            async with asyncio.timeout(0.05):
                await http.ws_connect(f"{sim.ws_url}/ws")
        except TimeoutError:
            pass
        await asyncio.sleep(0.2)
        assert sim.stats.held_handshakes == 1 and sim.stats.connections_opened == 0
        assert not sim.clients
    assert "Error handling request" not in caplog.text


# --- flap with time up ------------------------------------------------------------------------


async def test_flap_with_up_streams_for_up_seconds_then_drops() -> None:
    async with (
        running(symbols=SYMBOLS, rate=50.0) as sim,
        aiohttp.ClientSession() as http,
        http.ws_connect(stream_url(sim, *BOOKS)) as before,  # opened before: left alone
    ):
        sim.flap(0.6, up=0.25)
        started = time.monotonic()
        async with http.ws_connect(stream_url(sim, *BOOKS)) as ws:
            ending = await until_end(ws)
        assert not ending.clean  # dropped: no close frame
        assert 0.23 <= ending.at - started < 0.4
        assert len(ending.frames) >= 10 and all(well_formed(f, True) for f in ending.frames)
        ids = [json.loads(f)["data"]["u"] for f in ending.frames if "btcusdt" in f]
        assert strictly_increasing(ids)
        # subscribing later is answered and streams as usual until the same drop
        started = time.monotonic()
        async with http.ws_connect(f"{sim.ws_url}/ws") as ws:
            answer = await request(ws, {"method": "SUBSCRIBE", "params": [BOOKS[1]], "id": 1})
            ending = await until_end(ws)
        assert answer == {"result": None, "id": 1}
        assert not ending.clean and 0.23 <= ending.at - started < 0.4
        assert len(ending.frames) >= 5
        assert len(await collect(before, 0.05)) >= 2
        assert [c.close_reason for c in sim.stats.connections.values()] == [None, "flap", "flap"]
        await eventually(lambda: not sim.faults.flapping(time.monotonic()))
        async with http.ws_connect(stream_url(sim, *BOOKS)) as ws:
            assert len(await collect(ws, 0.35)) >= 20  # over: connections stay
    assert [w for _t, w in sim.faults.log] == ["flap(0.6, 0.25)"]


async def test_flap_without_up_still_sends_one_frame() -> None:
    async with running(symbols=SYMBOLS, rate=50.0) as sim, aiohttp.ClientSession() as http:
        sim.flap(0.3, up=0.0)
        async with http.ws_connect(stream_url(sim, *BOOKS)) as ws:
            ending = await until_end(ws)
        assert not ending.clean and len(ending.frames) == 1


async def test_clear_keeps_connections_accepted_while_flapping() -> None:
    async with running(symbols=SYMBOLS, rate=50.0) as sim, aiohttp.ClientSession() as http:
        sim.flap(5.0, up=0.15)
        async with http.ws_connect(stream_url(sim, *BOOKS)) as streaming:  # drop due at 0.15 s
            sim.flap(5.0)
            async with http.ws_connect(f"{sim.ws_url}/ws") as bare:  # one frame once subscribed
                await request(bare, {"method": "LIST_SUBSCRIPTIONS", "id": 1})  # it is open
                sim.clear()
                assert len(await collect(streaming, 0.3)) >= 10  # past its `up`: not dropped
                await request(bare, {"method": "SUBSCRIBE", "params": BOOKS, "id": 2})
                assert len(await collect(bare, 0.1)) >= 3
        await eventually(
            lambda: [c.close_reason for c in sim.stats.connections.values()] == ["client"] * 2,
            what="both closed by the client",
        )


# --- bounds -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [0.0, -1.0, math.inf, math.nan])
def test_the_new_faults_are_bounded(seconds: float) -> None:
    sim = Simulator()
    with pytest.raises(ValueError, match="finite, positive"):
        sim.slow_handshake(seconds, 0.1)
    with pytest.raises(ValueError, match="delay"):
        sim.slow_handshake(1.0, -abs(seconds) or -1.0)
    with pytest.raises(ValueError, match="finite, positive"):
        sim.flap(seconds, 0.1)
    with pytest.raises(ValueError, match="up"):
        sim.flap(1.0, -abs(seconds) or -1.0)
    assert sim.faults.log == []
