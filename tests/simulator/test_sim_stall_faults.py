"""The faults behind silent client stalls, seen from real clients: slow handshakes, flapping
connections that stream a while before the drop, restarted and jumped ids, refused
subscriptions, and an exchange that accepts new connections but stays silent."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import time

import aiohttp
import pytest

from foxtrot_stream_binance.simulator import Simulator

from simwire import (
    check_combined,
    collect,
    eventually,
    request,
    running,
    stream_url,
    strictly_increasing,
    until_end,
    watch,
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
        sim.slow_handshake(1.5, 0.25)
        opened, first = await _open_after(http, stream_url(sim, *BOOKS))
        assert opened >= 0.24  # held for the delay (late is possible on a loaded machine)
        assert '"stream":' in first  # then it streams as usual
        # a second connection asked while the first is held is held as long, not queued
        url = stream_url(sim, BOOKS[0], combined=False)
        times = await asyncio.gather(_open_after(http, url), _open_after(http, url))
        assert all(t >= 0.24 for t, _ in times), times
        assert sim.stats.held_handshakes == 3 and sim.stats.connections_opened == 3
        assert list(sim.stats.handshake_holds) == [0.25] * 3  # the delay, not the window
        await asyncio.sleep(max(0.0, sim.faults.slow_handshake_until - time.monotonic()))
        await _open_after(http, url)  # over: not held
    assert sim.stats.held_handshakes == 3
    assert [w for _t, w in sim.faults.log] == ["slow_handshake(1.5, 0.25)"]


async def test_slow_handshake_without_a_delay_holds_until_the_window_ends() -> None:
    async with running(symbols=SYMBOLS, rate=50.0) as sim, aiohttp.ClientSession() as http:
        sim.slow_handshake(0.25)
        ends = sim.faults.slow_handshake_until
        await asyncio.sleep(0.05)
        started = time.monotonic()
        opened, _ = await _open_after(http, stream_url(sim, *BOOKS))
        assert started + opened >= ends - 0.005
        assert 0 < sim.stats.handshake_holds[-1] <= 0.2  # until the end, decided on arrival


async def test_clear_lets_held_handshakes_go_and_stop_refuses_them() -> None:
    async with aiohttp.ClientSession() as http:
        async with running(symbols=SYMBOLS, rate=50.0) as sim:
            sim.slow_handshake(5.0, 5.0)
            held = asyncio.create_task(_open_after(http, stream_url(sim, *BOOKS)))
            await asyncio.sleep(0.1)
            assert not held.done()
            sim.clear()
            opened, _ = await held
            assert 0.09 <= opened < 2.0  # let go, not held for its 5 s
            sim.slow_handshake(5.0, 5.0)
            held = asyncio.create_task(http.ws_connect(f"{sim.ws_url}/ws"))
            await asyncio.sleep(0.1)
            stopping = time.monotonic()
        # a held upgrade does not hold up the stop: it is answered 503 below, where waiting for
        # aiohttp's 0.5 s shutdown timeout would cancel it without an answer
        assert time.monotonic() - stopping < 2.0
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
        running(symbols=SYMBOLS, rate=50.0, pong_timeout=5.0) as sim,  # `before` is not read
        aiohttp.ClientSession() as http,
        http.ws_connect(stream_url(sim, *BOOKS)) as before,  # opened before: left alone
    ):
        sim.flap(1.5, up=0.6)  # roomy: a loaded machine answers a SUBSCRIBE late
        started = time.monotonic()
        async with http.ws_connect(stream_url(sim, *BOOKS)) as ws:
            ending = await until_end(ws)
        assert not ending.clean  # dropped: no close frame
        assert 0.58 <= ending.at - started < 1.5
        assert len(ending.frames) >= 10 and all(well_formed(f, True) for f in ending.frames)
        ids = [json.loads(f)["data"]["u"] for f in ending.frames if "btcusdt" in f]
        assert strictly_increasing(ids)
        # subscribing later is answered and streams as usual until the same drop
        started = time.monotonic()
        async with http.ws_connect(f"{sim.ws_url}/ws") as ws:
            answer = await request(ws, {"method": "SUBSCRIBE", "params": [BOOKS[1]], "id": 1})
            ending = await until_end(ws)
        assert answer == {"result": None, "id": 1}
        assert not ending.clean and 0.58 <= ending.at - started < 1.5
        assert len(ending.frames) >= 5
        assert len(await collect(before, 0.05, at_least=2)) >= 2
        assert [c.close_reason for c in sim.stats.connections.values()] == [None, "flap", "flap"]
        await eventually(lambda: not sim.faults.flapping(time.monotonic()))
        async with http.ws_connect(stream_url(sim, *BOOKS)) as ws:
            assert len(await collect(ws, 0.35, at_least=20)) >= 20  # over: connections stay
    assert [w for _t, w in sim.faults.log] == ["flap(1.5, 0.6)"]


async def test_flap_without_up_still_sends_one_frame() -> None:
    async with running(symbols=SYMBOLS, rate=50.0) as sim, aiohttp.ClientSession() as http:
        sim.flap(0.3, up=0.0)
        async with http.ws_connect(stream_url(sim, *BOOKS)) as ws:
            ending = await until_end(ws)
        assert not ending.clean and len(ending.frames) == 1


async def test_clear_keeps_connections_accepted_while_flapping() -> None:
    async with running(symbols=SYMBOLS, rate=50.0) as sim, aiohttp.ClientSession() as http:
        sim.flap(5.0, up=0.5)
        async with http.ws_connect(stream_url(sim, *BOOKS)) as streaming:
            sim.flap(5.0)
            async with http.ws_connect(f"{sim.ws_url}/ws") as bare:  # one frame once subscribed
                await request(bare, {"method": "LIST_SUBSCRIPTIONS", "id": 1})  # it is open
                sim.clear()
                drop_due = sim.stats.connections[1].opened_at + 0.5
                assert time.monotonic() < drop_due - 0.1
                frames = await collect(streaming, drop_due + 0.1 - time.monotonic(), at_least=10)
                assert len(frames) >= 10  # past its `up`: not dropped
                await request(bare, {"method": "SUBSCRIBE", "params": BOOKS, "id": 2})
                assert len(await collect(bare, 0.1, at_least=3)) >= 3
        await eventually(
            lambda: [c.close_reason for c in sim.stats.connections.values()] == ["client"] * 2,
            what="both closed by the client",
        )


# --- reset_ids and jump_ids ------------------------------------------------------------------


def _ids(frames: list[str], stream: str, key: str) -> list[int]:
    """`key` of each `stream` payload among combined-stream frames, in order."""
    out = []
    for text in frames:
        frame = json.loads(text)
        if frame["stream"] == stream:
            out.append(frame["data"][key])
    return out


async def test_reset_ids_restarts_update_and_trade_ids_and_prices_go_on() -> None:
    names = ("btcusdt@bookTicker", "btcusdt@trade", "btcusdt@aggTrade")
    async with (
        running(symbols=SYMBOLS, rate=100.0, trade_ratio=0.5) as sim,
        aiohttp.ClientSession() as http,
        http.ws_connect(stream_url(sim, *names, BOOKS[1])) as ws,
    ):
        before = await collect(ws, 0.15)
        sim.reset_ids("btcusdt")
        after = await collect(ws, 0.3)
        url = f"{sim.rest_url}/api/v3/ticker/bookTicker?symbol=BTCUSDT"
        async with http.get(url) as r:
            assert set(await r.json()) == {"symbol", "bidPrice", "bidQty", "askPrice", "askQty"}
    frames = before + after
    assert all(well_formed(f, True) for f in frames)
    for kind, key, first in (("bookTicker", "u", 4), ("trade", "t", 1), ("aggTrade", "a", 1)):
        ids = _ids(frames, f"btcusdt@{kind}", key)
        drop = next(i for i, (a, b) in enumerate(itertools.pairwise(ids), 1) if b <= a)
        assert min(ids[:drop]) > 10**5, (kind, ids)  # the seeded, large ids before
        assert 1 <= ids[drop] <= first, (kind, ids)  # then small ones
        assert strictly_increasing(ids[drop:]) and len(ids[drop:]) >= 5, (kind, ids)
        assert strictly_increasing(ids[:drop]), (kind, ids)
    trades = _ids(frames, "btcusdt@trade", "t")
    assert trades[trades.index(1) :] == list(range(1, len(trades) - trades.index(1) + 1))
    # prices go on: the first book after the restart is a step away from the last before it
    books = [json.loads(f)["data"] for f in frames if "btcusdt@bookTicker" in f]
    i = next(i for i, b in enumerate(books) if b["u"] <= 4)
    assert abs(float(books[i]["b"]) - float(books[i - 1]["b"])) < 1.0
    other = _ids(frames, BOOKS[1], "u")  # ETHUSDT's ids are untouched
    assert strictly_increasing(other) and min(other) > 10**5 and len(other) > 10
    assert [w for _t, w in sim.faults.log] == ["reset_ids(BTCUSDT)"]


def _one_jump(ids: list[int], by: int) -> int:
    """The index of the one id `by` too high: without it, and with it `by` lower, every step
    is a normal one (1 to 4), and ids go on below it."""
    j = ids.index(max(ids))
    assert len(ids) - j > 3, ids
    unjumped = [*ids[:j], ids[j] - by, *ids[j + 1 :]]
    assert all(1 <= b - a <= 4 for a, b in itertools.pairwise(unjumped)), ids
    return j


@pytest.mark.parametrize("by", [1000, 2**64])
async def test_jump_ids_sends_exactly_one_jumped_update_id(by: int) -> None:
    async with (
        running(symbols=SYMBOLS, rate=100.0) as sim,
        aiohttp.ClientSession() as http,
        http.ws_connect(stream_url(sim, *BOOKS)) as combined,
        http.ws_connect(stream_url(sim, BOOKS[0], combined=False)) as raw,
    ):
        await collect(combined, 0.05)
        sim.jump_ids("BTCUSDT", by)
        frames, raw_frames = await asyncio.gather(collect(combined, 0.2), collect(raw, 0.25))
    ids = [json.loads(f)["data"]["u"] for f in frames if "btcusdt" in f]
    j = _one_jump(ids, by)
    assert f'"u":{ids[j]},' in next(f for f in frames if str(ids[j]) in f)  # a plain integer
    raw_ids = [json.loads(f)["u"] for f in raw_frames]
    assert ids[j] in raw_ids  # the same one frame for every subscriber
    _one_jump(raw_ids, by)
    assert strictly_increasing([json.loads(f)["data"]["u"] for f in frames if "eth" in f])
    assert [w for _t, w in sim.faults.log] == [f"jump_ids(BTCUSDT, {by})"]


async def test_a_jump_waits_for_a_frame_someone_gets_and_clear_forgets_it() -> None:
    async with running(symbols=SYMBOLS, rate=100.0) as sim, aiohttp.ClientSession() as http:
        sim.jump_ids("btcusdt", 500)
        sim.jump_ids("BTCUSDT", 500)  # adds up in the one frame
        await asyncio.sleep(0.05)  # nobody subscribed: nothing spent
        sim.silence(0.1, ["BTCUSDT"])
        async with http.ws_connect(stream_url(sim, BOOKS[0], combined=False)) as ws:
            ids = [json.loads(f)["u"] for f in await collect(ws, 0.25)]  # silenced: kept
        assert _one_jump(ids, 1000) == 0  # the first frame after the silence
        sim.jump_ids("BTCUSDT", 1000)
        sim.clear()
        async with http.ws_connect(stream_url(sim, BOOKS[0], combined=False)) as ws:
            ids = [json.loads(f)["u"] for f in await collect(ws, 0.1)]
        assert all(1 <= b - a <= 4 for a, b in itertools.pairwise(ids)) and len(ids) > 3


# --- refuse_subscriptions ----------------------------------------------------------------------

REFUSED = {"error": {"code": 2, "msg": "Invalid request: refused"}}


def _symbols_of(frames: list[str]) -> set[str]:
    return {check_combined(json.loads(f))[0] for f in frames}


async def test_refused_subscriptions_are_answered_with_an_error_and_the_socket_stays() -> None:
    async with (
        running(symbols=(*SYMBOLS, "BNBUSDT"), rate=50.0, incoming_limit=100) as sim,
        aiohttp.ClientSession() as http,
        http.ws_connect(stream_url(sim, BOOKS[1])) as ws,
    ):
        sim.refuse_subscriptions(0.4, ["btcusdt"])
        params = [BOOKS[0], "bnbusdt@bookTicker"]  # one refused stream refuses the request
        answer = await request(ws, {"method": "SUBSCRIBE", "params": params, "id": 5})
        assert answer == REFUSED | {"id": 5}
        params = ["btcusdt@trade"]  # any stream of a refused symbol
        answer = await request(ws, {"method": "SUBSCRIBE", "params": params, "id": 6})
        assert answer == REFUSED | {"id": 6}
        answer = await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 7})
        assert answer == {"result": [BOOKS[1]], "id": 7}  # open, and nothing was subscribed
        assert _symbols_of(await collect(ws, 0.05)) == {"ETHUSDT"}  # the others still flow
        params = ["bnbusdt@bookTicker"]
        answer = await request(ws, {"method": "SUBSCRIBE", "params": params, "id": 8})
        assert answer == {"result": None, "id": 8}  # and others still subscribe
        assert _symbols_of(await collect(ws, 0.1)) == {"ETHUSDT", "BNBUSDT"}
        assert sim.stats.refused_subscriptions == 2
        asked = sim.stats.connections[1].subscriptions
        assert asked[1:3] == [(BOOKS[0], "bnbusdt@bookTicker"), ("btcusdt@trade",)]
        await eventually(lambda: not sim.faults.refusing_symbols(time.monotonic()))
        answer = await request(ws, {"method": "SUBSCRIBE", "params": [BOOKS[0]], "id": 9})
        assert answer == {"result": None, "id": 9}  # over
        assert _symbols_of(await collect(ws, 0.1)) == {"BTCUSDT", "ETHUSDT", "BNBUSDT"}
        assert not ws.closed and sim.stats.connections[1].close_reason is None
    assert [w for _t, w in sim.faults.log] == ["refuse_subscriptions(0.4, ['BTCUSDT'])"]


async def test_refused_streams_in_a_url_are_left_out_silently() -> None:
    async with running(symbols=SYMBOLS, rate=50.0) as sim, aiohttp.ClientSession() as http:
        sim.refuse_subscriptions(5.0, ["BTCUSDT"])
        names = (BOOKS[0], "btcusdt@trade", BOOKS[1])
        async with http.ws_connect(stream_url(sim, *names)) as ws:
            assert _symbols_of(await collect(ws, 0.15)) == {"ETHUSDT"}
            answer = await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 1})
            assert answer == {"result": [BOOKS[1]], "id": 1}
        async with http.ws_connect(stream_url(sim, BOOKS[0], combined=False)) as ws:
            assert await collect(ws, 0.1) == []  # opened, with nothing to send
            answer = await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 2})
            assert answer == {"result": [], "id": 2}
        assert sim.stats.refused_subscriptions == 2
        assert sim.stats.connections[1].subscriptions == [names]  # what was asked
        sim.clear()
        async with http.ws_connect(stream_url(sim, *names)) as ws:
            assert _symbols_of(await collect(ws, 0.1)) == {"BTCUSDT", "ETHUSDT"}


# --- silence: accept, but say nothing ---------------------------------------------------------


async def test_silence_covers_connections_opened_during_it() -> None:
    async with (
        running(symbols=SYMBOLS, rate=50.0, ping_interval=0.1, incoming_limit=100) as sim,
        aiohttp.ClientSession() as http,
    ):
        sim.silence(0.4)
        ends = time.monotonic() + 0.4
        async with (
            http.ws_connect(stream_url(sim, *BOOKS), autoping=False) as ws,
            http.ws_connect(f"{sim.ws_url}/ws", autoping=False) as bare,
        ):
            answer = await request(bare, {"method": "SUBSCRIBE", "params": BOOKS, "id": 1})
            assert answer == {"result": None, "id": 1}  # control answers go on
            during, bare_during = await asyncio.gather(
                watch(ws, ends - 0.05 - time.monotonic()),
                watch(bare, ends - 0.05 - time.monotonic()),
            )
            for seen in (during, bare_during):  # accepted, pinged, but no data
                assert seen.frames == [] and seen.pings and not seen.ended, seen
            await asyncio.sleep(max(0.0, ends + 0.02 - time.monotonic()))
            after = await watch(ws, 0.15)
            assert len(after.frames) >= 5 and all(well_formed(f, True) for f in after.frames)
            assert len((await watch(bare, 0.1)).frames) >= 3
        assert sim.stats.pong_timeouts == 0


async def test_silence_of_some_symbols_covers_new_connections_too() -> None:
    async with running(symbols=SYMBOLS, rate=50.0) as sim, aiohttp.ClientSession() as http:
        sim.silence(0.3, ["ETHUSDT"])
        async with http.ws_connect(stream_url(sim, *BOOKS)) as ws:
            assert _symbols_of(await collect(ws, 0.2)) == {"BTCUSDT"}


# --- clear -------------------------------------------------------------------------------------


async def test_clear_ends_the_new_faults_at_once() -> None:
    async with running(symbols=SYMBOLS, rate=50.0) as sim, aiohttp.ClientSession() as http:
        sim.slow_handshake(10, 10)
        sim.flap(10, up=0.1)
        sim.refuse_subscriptions(10, SYMBOLS)
        sim.jump_ids("BTCUSDT", 10**6)
        sim.clear()
        started = time.monotonic()
        async with http.ws_connect(stream_url(sim, *BOOKS)) as ws:
            assert time.monotonic() - started < 5.0  # not held for its 10 s
            frames = await collect(ws, 0.25)  # past `up`: not dropped
            assert _symbols_of(frames) == set(SYMBOLS)  # not refused
            ids = _ids(frames, BOOKS[0], "u")
            assert all(1 <= b - a <= 4 for a, b in itertools.pairwise(ids))  # no jump
            assert not ws.closed
        assert sim.stats.held_handshakes == sim.stats.refused_subscriptions == 0
        assert [what for _t, what in sim.faults.log][-1] == "clear"


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


@pytest.mark.parametrize("by", [0, -5, 1.5, True])
def test_jumps_are_forward_and_whole(by: int) -> None:
    sim = Simulator()
    with pytest.raises(ValueError, match="by must be an integer >= 1"):
        sim.jump_ids("BTCUSDT", by)
    assert sim.faults.id_jumps == {} and sim.faults.log == []


def test_refusals_name_symbols() -> None:
    sim = Simulator()
    with pytest.raises(ValueError, match="at least one symbol"):
        sim.refuse_subscriptions(1.0, [])
    with pytest.raises(ValueError, match="finite, positive"):
        sim.refuse_subscriptions(0.0, ["BTCUSDT"])
    assert sim.faults.log == []


def test_id_faults_name_a_listed_symbol() -> None:
    sim = Simulator()
    for fault in (sim.reset_ids, sim.jump_ids):
        with pytest.raises(ValueError, match="'NOSUCH' is not a listed symbol"):
            fault("NOSUCH")
    assert sim.faults.log == []
