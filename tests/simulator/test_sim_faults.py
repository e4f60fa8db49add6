"""Every scripted fault, seen from real clients: what arrives, what does not, and how the
connection ends."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import websockets
from websockets.exceptions import ConnectionClosedError

from foxtrot_stream_binance.simulator import Simulator
from foxtrot_stream_binance.simulator.streams import malformed

from simwire import (
    check_book_ticker,
    check_combined,
    collect,
    drain,
    eventually,
    read_json,
    request,
    running,
    stream_url,
    until_end,
    watch,
    well_formed,
)

SYMBOLS = ("BTCUSDT", "ETHUSDT")
BOOKS = ("btcusdt@bookTicker", "ethusdt@bookTicker")

_Streaming = tuple[Simulator, aiohttp.ClientSession, aiohttp.ClientWebSocketResponse]


@contextlib.asynccontextmanager
async def streaming(*, autoping: bool = True, **overrides: Any) -> AsyncIterator[_Streaming]:
    """A simulator quoting SYMBOLS (30 times a second unless `overrides` say otherwise), a
    session, and a combined stream of both books on it: what most fault tests start from."""
    async with (
        running(**({"symbols": SYMBOLS, "rate": 30.0} | overrides)) as sim,
        aiohttp.ClientSession() as http,
        http.ws_connect(stream_url(sim, *BOOKS), autoping=autoping) as ws,
    ):
        yield sim, http, ws


async def _rest_status(http: aiohttp.ClientSession, sim: Simulator) -> int:
    async with http.get(f"{sim.rest_url}/api/v3/ping") as r:
        return r.status


async def _upgrade_status(http: aiohttp.ClientSession, sim: Simulator) -> int:
    """101 if a WebSocket upgrade is accepted (the connection is closed again at once)."""
    try:
        async with http.ws_connect(f"{sim.ws_url}/ws"):
            return 101
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status


async def test_drop_all_ends_connections_without_a_close_frame() -> None:
    async with (
        streaming() as (sim, http, combined),
        websockets.connect(stream_url(sim, BOOKS[0], combined=False), proxy=None) as peer,
    ):
        await read_json(combined)
        await peer.recv()
        assert sim.drop_all() == 2
        ending = await until_end(combined)
        with pytest.raises(ConnectionClosedError) as closed:
            while True:
                await peer.recv()
        assert not ending.clean and ending.code == 1006
        assert closed.value.rcvd is None  # no close frame came
        assert [c.close_reason for c in sim.stats.connections.values()] == ["dropped"] * 2
        assert not sim.clients
        async with http.ws_connect(stream_url(sim, *BOOKS)) as again:  # nothing refused
            await read_json(again)


async def test_refuse_upgrades_answers_503_while_active() -> None:
    async with streaming() as (sim, http, ws):
        sim.refuse_upgrades(0.3)
        assert await _upgrade_status(http, sim) == 503
        assert await _rest_status(http, sim) == 200
        assert len(await collect(ws, 0.1, at_least=2)) >= 2  # open connections are left alone
        assert sim.stats.refused_upgrades == 1
        await eventually(lambda: not sim.faults.refusing(time.monotonic()))
        assert await _upgrade_status(http, sim) == 101
        assert (sim.stats.refused_upgrades, sim.stats.connection_attempts) == (1, 3)


async def test_stall_sends_nothing_and_ignores_pongs() -> None:
    async with streaming(
        rate=50.0, ping_interval=0.1, pong_timeout=0.25, incoming_limit=100, autoping=False
    ) as (sim, _http, ws):
        before = await watch(ws, 0.15, answer_pings=False)  # the ping at 0.1 s: unanswered
        assert before.pings and before.frames
        sim.stall(0.4)  # past the pong timeout of that ping
        ends = time.monotonic() + 0.4
        await drain(ws)  # what was already on its way
        await ws.ping(b"hello?")
        await ws.send_str(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 1}))
        await ws.pong(before.pings[0])  # a late echo: a hung server does not see it
        during = await watch(ws, ends - 0.05 - time.monotonic(), answer_pings=False)
        assert not (during.frames or during.pings or during.pongs or during.ended), during
        conn = sim.stats.connections[1]
        assert conn.pongs_received == 1 and conn.pongs_matched == 0
        assert conn.close_reason is None and sim.stats.pong_timeouts == 0
        # the stall ends: data and pings again, and the connection was not timed out
        after = await watch(ws, 0.25)
        assert after.frames and after.pings and not after.ended
        assert all(well_formed(f, combined=True) for f in after.frames)
        # the request sent during the stall is never answered
        assert all("id" not in json.loads(f) for f in during.frames + after.frames)
        assert sim.stats.connections_opened == 1


async def test_silence_stops_data_but_not_pings() -> None:
    # pings every 0.1 s: its pongs and one ping of ours stay under 5 messages a second
    async with streaming(
        rate=50.0, ping_interval=0.1, pong_timeout=0.25, incoming_limit=100, autoping=False
    ) as (sim, http, ws):
        async with http.get(f"{sim.rest_url}/api/v3/ticker/bookTicker?symbol=BTCUSDT") as r:
            book_before = await r.json()
        sim.silence(0.4)
        ends = time.monotonic() + 0.4
        await drain(ws)
        await ws.ping(b"still there?")
        during = await watch(ws, ends - 0.05 - time.monotonic())
        assert during.frames == [] and during.pings and during.pongs == 1, during
        # the market keeps moving underneath: REST answers change
        async with http.get(f"{sim.rest_url}/api/v3/ticker/bookTicker?symbol=BTCUSDT") as r:
            assert await r.json() != book_before
        after = await watch(ws, 0.2)
        assert len(after.frames) >= 5
        assert sim.stats.connections[1].close_reason is None
        assert sim.stats.connections_opened == 1 and sim.stats.pong_timeouts == 0


async def test_silence_of_some_symbols_leaves_the_others_flowing() -> None:
    async with (
        running(
            symbols=SYMBOLS, rate=50.0, ping_interval=0.05, pong_timeout=0.15, incoming_limit=100
        ) as sim,
        aiohttp.ClientSession() as http,
        http.ws_connect(stream_url(sim, *BOOKS)) as ws,  # autoping: answers the pings
    ):
        sim.silence(0.4, ["btcusdt"])
        ends = time.monotonic() + 0.4
        await drain(ws, quiet=0.015)
        frames = await collect(ws, ends - 0.05 - time.monotonic())
        during = [check_combined(json.loads(f))[0] for f in frames]
        assert "BTCUSDT" not in during and during.count("ETHUSDT") >= 5
        await asyncio.sleep(max(0.0, ends + 0.02 - time.monotonic()))
        after = [check_combined(json.loads(f))[0] for f in await collect(ws, 0.2)]
        assert after.count("BTCUSDT") >= 4
    # pongs went on through the silence
    assert sim.stats.pong_timeouts == 0 and sim.stats.connections[1].pongs_matched >= 4


@pytest.mark.parametrize("combined", [True, False])
async def test_malformed_delivers_exactly_n_bad_frames_of_every_kind(combined: bool) -> None:
    async with (
        running(symbols=SYMBOLS, rate=0.0) as sim,  # no good data in between
        aiohttp.ClientSession() as http,
        http.ws_connect(stream_url(sim, BOOKS[0], combined=combined)) as ws,
    ):
        await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 1})  # connected, subscribed
        assert sim.malformed(10) == 1
        frames = await collect(ws, 0.2)
        assert [f.encode() for f in frames] == malformed("BTCUSDT", combined, 10)
        assert not any(well_formed(f, combined) for f in frames), frames
        assert await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 2})  # still open
    with pytest.raises(ValueError):
        json.loads(frames[0])  # invalid JSON
    data = [json.loads(f) for f in frames[1:7]]
    if combined:
        assert data[2]["stream"] == "nosuch@thing"  # unknown stream
        data = [d.get("data", d) if isinstance(d, dict) else d for d in data]
    assert data[0]["u"] == "x" and data[0]["b"] == 1  # wrong types
    assert set(data[1]) == {"u", "s"}  # missing fields
    assert data[3] == {"code": -1, "msg": "unexpected error object"}
    assert data[4] == [1, 2, 3]
    assert data[5]["e"] == "trade" and data[5]["E"] == "soon"
    assert frames[7:] == frames[:3]  # then the kinds cycle


async def test_malformed_frames_wait_for_the_next_connection() -> None:
    async with running(symbols=SYMBOLS, rate=0.0) as sim, aiohttp.ClientSession() as http:
        assert sim.malformed(3) == 0  # nobody connected: held for the next connection
        async with http.ws_connect(stream_url(sim, *BOOKS)) as ws:
            frames = await collect(ws, 0.15)
        assert [f.encode() for f in frames] == malformed("BTCUSDT", True, 3)
        async with http.ws_connect(stream_url(sim, *BOOKS)) as ws:
            assert await collect(ws, 0.1) == []  # only once


async def test_flap_sends_one_frame_then_drops() -> None:
    async with running(symbols=SYMBOLS, rate=20.0) as sim, aiohttp.ClientSession() as http:
        sim.flap(0.3)
        async with http.ws_connect(stream_url(sim, BOOKS[0], combined=False)) as ws:
            ending = await until_end(ws)
        assert not ending.clean and len(ending.frames) == 1
        check_book_ticker(json.loads(ending.frames[0]), "BTCUSDT")
        # subscribing later: the answer, one frame, then the drop
        async with http.ws_connect(f"{sim.ws_url}/ws") as ws:
            await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": BOOKS, "id": 3}))
            ending = await until_end(ws)
        assert not ending.clean
        answer, frame = (json.loads(f) for f in ending.frames)
        assert answer == {"result": None, "id": 3}
        check_book_ticker(frame)
        assert [c.close_reason for c in sim.stats.connections.values()] == ["flap", "flap"]
        await eventually(lambda: not sim.faults.flapping(time.monotonic()))
        async with http.ws_connect(stream_url(sim, BOOKS[0], combined=False)) as ws:
            assert len(await collect(ws, 0.15, at_least=2)) >= 2  # over: connections stay


async def test_slow_rest_holds_answers() -> None:
    # What the simulator decided is checked exactly (stats.rest_holds); what the client saw only
    # from below: a loaded machine can make any request late, never early.
    async with running(symbols=SYMBOLS) as sim, aiohttp.ClientSession() as http:

        async def timed() -> float:
            started = time.monotonic()
            assert await _rest_status(http, sim) == 200
            return time.monotonic() - started

        sim.slow_rest(30, delay=0.1)
        assert await timed() >= 0.09
        assert await timed() >= 0.09  # each request in the window, not just the first
        assert list(sim.stats.rest_holds) == [0.1, 0.1]
        sim.slow_rest(0.2)  # no delay given: held until the window ends
        ends = sim.faults.slow_rest_until
        assert await _rest_status(http, sim) == 200
        assert time.monotonic() >= ends - 0.01  # asyncio may wake within its clock resolution
        assert 0 < sim.stats.rest_holds[-1] <= 0.2
        await timed()  # over
        assert sim.stats.rest_holds[-1] == 0.0


@pytest.mark.parametrize(
    ("status", "retry_after", "code"),
    [(429, "0.5", -1003), (418, "3", -1003), (500, None, -1000), (503, None, -1000)],
)
async def test_rest_errors_answer_the_next_requests(
    status: int, retry_after: str | None, code: int
) -> None:
    async with running(symbols=SYMBOLS) as sim, aiohttp.ClientSession() as http:
        url = f"{sim.rest_url}/api/v3/ticker/bookTicker?symbol=BTCUSDT"
        sim.rest_errors(status, 2, retry_after=float(retry_after or 1))
        answers: list[tuple[int, Any, Any]] = []
        for _ in range(3):
            async with http.get(url) as r:
                answers.append((r.status, await r.json(content_type=None), r.headers))
    assert [a[0] for a in answers] == [status, status, 200]
    for _, body, headers in answers[:2]:
        assert body["code"] == code
        assert headers.get("Retry-After") == retry_after
        assert headers["X-MBX-USED-WEIGHT-1M"] == "0"  # refused before any weight is used
    assert answers[2][2]["X-MBX-USED-WEIGHT-1M"] == "2"
    assert sim.stats.rest_injected == 2


async def test_cut_lifetime_closes_every_connection_normally() -> None:
    async with (
        streaming() as (sim, http, first),
        http.ws_connect(stream_url(sim, BOOKS[1], combined=False)) as second,
    ):
        await read_json(first)
        await read_json(second)
        assert sim.cut_lifetime() == 2
        endings = [await until_end(first), await until_end(second)]
        assert all(e.clean and e.code == 1000 for e in endings), endings
        assert [c.close_reason for c in sim.stats.connections.values()] == ["lifetime"] * 2
        async with http.ws_connect(stream_url(sim, *BOOKS)) as again:
            await read_json(again)


@pytest.mark.parametrize(
    ("combined", "query", "unit"),
    [(False, "", 1e3), (True, "", 1e3), (True, "timeUnit=MICROSECOND", 1e6)],
)
async def test_server_shutdown_notice_then_close(combined: bool, query: str, unit: float) -> None:
    async with (
        running(symbols=SYMBOLS, rate=50.0) as sim,
        aiohttp.ClientSession() as http,
        http.ws_connect(stream_url(sim, BOOKS[0], combined=combined, query=query)) as ws,
    ):
        await read_json(ws)
        assert sim.server_shutdown(grace=0.25) == 1
        noticed = time.monotonic()
        # a replacement opened right after the notice is not affected
        async with http.ws_connect(stream_url(sim, BOOKS[0])) as replacement:
            ending = await until_end(ws)
            assert len(await collect(replacement, 0.1, at_least=2)) >= 2
    assert ending.clean and ending.code == 1001
    assert 0.2 <= ending.at - noticed < 2.0  # after the grace (upper bound: a loaded machine)
    frames = [json.loads(f) for f in ending.frames]
    notices = [i for i, f in enumerate(frames) if "serverShutdown" in json.dumps(f)]
    assert len(notices) == 1
    notice = frames[notices[0]]
    if combined:
        assert notice["stream"] == "!serverShutdown" and set(notice) == {"stream", "data"}
        notice = notice["data"]
    assert set(notice) == {"e", "E"} and notice["e"] == "serverShutdown"
    assert type(notice["E"]) is int and abs(notice["E"] - time.time() * unit) < 5 * unit
    assert len(frames) - notices[0] > 3, "data goes on during the grace period"
    assert sim.stats.connections[1].close_reason == "server shutdown"


async def test_server_shutdown_uses_the_configured_grace() -> None:
    async with (
        running(symbols=SYMBOLS, rate=0.0, shutdown_grace=0.15) as sim,
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{sim.ws_url}/ws") as ws,
    ):
        sim.server_shutdown()
        noticed = time.monotonic()
        ending = await until_end(ws)
    assert [json.loads(f)["e"] for f in ending.frames] == ["serverShutdown"]
    assert ending.clean and 0.12 <= ending.at - noticed < 0.95  # not the default 1 s


async def test_outage_drops_and_refuses_then_recovers() -> None:
    async with streaming() as (sim, http, ws):
        sim.outage(0.3)
        ending = await until_end(ws)
        assert not ending.clean
        assert await _upgrade_status(http, sim) == 503
        assert await _rest_status(http, sim) == 200  # REST keeps answering
        await eventually(lambda: not sim.faults.refusing(time.monotonic()))
        assert await _upgrade_status(http, sim) == 101


async def test_clear_ends_every_fault_at_once() -> None:
    async with running(symbols=SYMBOLS, rate=50.0) as sim, aiohttp.ClientSession() as http:
        sim.outage(10)
        sim.refuse_upgrades(10)
        sim.stall(10)
        sim.silence(10)
        sim.flap(10)
        sim.slow_rest(10)
        sim.rest_errors(500, 5)
        sim.malformed(4)  # nobody connected: pending
        sim.clear()
        started = time.monotonic()
        assert await _rest_status(http, sim) == 200
        assert time.monotonic() - started < 5.0 and sim.stats.rest_holds[-1] == 0.0
        async with http.ws_connect(stream_url(sim, *BOOKS)) as ws:
            frames = await collect(ws, 0.2, at_least=5)
            assert len(frames) >= 5 and all(well_formed(f, True) for f in frames)
            assert not ws.closed
        assert [what for _t, what in sim.faults.log][-1] == "clear"


@pytest.mark.parametrize("seconds", [0.0, -1.0, math.inf, math.nan])
def test_faults_must_be_bounded(seconds: float) -> None:
    sim = Simulator()
    for fault in (sim.stall, sim.silence, sim.refuse_upgrades, sim.flap, sim.slow_rest):
        with pytest.raises(ValueError, match="finite, positive"):
            fault(seconds)
    with pytest.raises(ValueError):
        sim.rest_errors(200, 1)
    with pytest.raises(ValueError):
        sim.malformed(0)
