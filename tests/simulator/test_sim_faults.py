"""Each scripted fault, seen from a real client, and that each one ends on time."""

from __future__ import annotations

import math
import time

import aiohttp
import orjson
import pytest
from conftest import MakeSim
from sim_helpers import ask, collect, ended, next_json, texts, wait_until

from foxtrot_stream_binance.simulator import Simulator
from foxtrot_stream_binance.simulator.streams import malformed

TEXT, PING = aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.PING
BOTH = "/stream?streams=btcusdt@bookTicker/ethusdt@bookTicker"


async def test_drop_all_cuts_every_connection_without_a_close_frame(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    async with (
        http.ws_connect(f"{sim.ws_url}{BOTH}") as a,
        http.ws_connect(f"{sim.ws_url}/ws/btcusdt@trade") as b,
    ):
        await wait_until(lambda: len(sim.clients) == 2)
        assert sim.drop_all() == 2
        assert not sim.clients
        for ws in (a, b):
            end = await ended(ws)
            assert end.type is not aiohttp.WSMsgType.CLOSE  # no handshake: the TCP link died
    async with http.ws_connect(f"{sim.ws_url}{BOTH}") as c:
        assert await next_json(c)
    assert [c.close_reason for c in sim.stats.connections.values()][:2] == ["dropped"] * 2


async def test_refused_upgrades_answer_503_until_the_window_ends(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    sim.refuse_upgrades(0.2)
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        await http.ws_connect(f"{sim.ws_url}{BOTH}")
    assert err.value.status == 503
    async with http.get(f"{sim.rest_url}/api/v3/ping") as r:
        assert r.status == 200  # REST keeps answering
    await wait_until(lambda: not sim.faults.refusing(time.monotonic()))
    async with http.ws_connect(f"{sim.ws_url}{BOTH}") as ws:
        assert await next_json(ws)
    assert (sim.stats.refused_upgrades, sim.stats.connection_attempts) == (1, 2)


async def test_stall_sends_nothing_and_answers_nothing_then_recovers(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(ping_interval=0.05, pong_timeout=0.15, incoming_limit=100)
    async with http.ws_connect(f"{sim.ws_url}{BOTH}", autoping=False) as ws:
        assert await next_json(ws)
        sim.stall(0.4)
        await collect(ws, 0.03)  # frames already on the wire
        await ws.ping(b"client")
        await ws.send_str('{"method":"LIST_SUBSCRIPTIONS","id":42}')
        during = await collect(ws, 0.25)
        assert during == []  # no data, no pong, no answer, no ping, and not timed out
        after = []
        deadline = time.monotonic() + 0.3
        while (left := deadline - time.monotonic()) > 0:
            chunk = await collect(ws, min(left, 0.02))
            for msg in chunk:
                if msg.type is PING:
                    await ws.pong(msg.data)  # this client answers by hand
            after += chunk
        assert not ws.closed
    kinds = {m.type for m in after}
    assert TEXT in kinds and PING in kinds  # data and pings resume …
    assert not any("id" in f for f in texts(after) if isinstance(f, dict))  # … not the answer
    assert sim.stats.connections_opened == 1


async def test_silence_stops_data_for_some_symbols_while_pongs_go_on(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(ping_interval=0.05, pong_timeout=0.15, incoming_limit=100)
    async with http.ws_connect(f"{sim.ws_url}{BOTH}") as ws:
        assert await next_json(ws)
        sim.silence(0.4, symbols=["ethusdt"])
        await collect(ws, 0.03)
        during = texts(await collect(ws, 0.25))
        await wait_until(lambda: not sim.faults.silenced(time.monotonic()))
        after = texts(await collect(ws, 0.15))
        assert not ws.closed
    assert during and all(f["stream"] == "btcusdt@bookTicker" for f in during)
    assert any(f["stream"] == "ethusdt@bookTicker" for f in after)
    assert sim.stats.pong_timeouts == 0 and sim.stats.connections[1].pongs_matched >= 4


async def test_silence_of_everything_keeps_the_connection_alive(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(ping_interval=0.05, pong_timeout=0.15, incoming_limit=100)
    async with http.ws_connect(f"{sim.ws_url}{BOTH}") as ws:
        assert await next_json(ws)
        sim.silence(0.4)
        await collect(ws, 0.03)
        assert await collect(ws, 0.25) == []
        assert await next_json(ws, 0.3)  # back, on the same connection
    assert sim.stats.connections_opened == 1 and sim.stats.pong_timeouts == 0


@pytest.mark.parametrize("combined", [True, False])
async def test_malformed_frames_of_every_kind(
    make_sim: MakeSim, http: aiohttp.ClientSession, combined: bool
) -> None:
    sim = await make_sim(rates={"BTCUSDT": 0.0})  # no data around the bad frames
    path = "/stream?streams=btcusdt@bookTicker" if combined else "/ws/btcusdt@bookTicker"
    async with http.ws_connect(f"{sim.ws_url}{path}") as ws:
        await wait_until(lambda: bool(sim.clients))
        assert sim.malformed(7) == 1
        got = [m.data.encode() for m in await collect(ws, 0.15) if m.type is TEXT]
        assert got == malformed("BTCUSDT", combined, 7)
        assert await ask(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 1})  # still open
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(got[0])  # invalid JSON
    data = [orjson.loads(f) for f in got[1:]]
    if combined:
        assert data[2]["stream"] == "nosuch@thing"  # unknown stream
        data = [d.get("data", d) if isinstance(d, dict) else d for d in data]
    assert data[0]["u"] == "x" and data[0]["b"] == 1  # wrong types
    assert set(data[1]) == {"u", "s"}  # missing fields
    assert data[3] == {"code": -1, "msg": "unexpected error object"}
    assert data[4] == [1, 2, 3]
    assert data[5]["e"] == "trade" and data[5]["E"] == "soon"


async def test_malformed_frames_wait_for_the_next_connection(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    assert sim.malformed(2) == 0
    async with http.ws_connect(f"{sim.ws_url}/ws") as ws:
        first = [m.data for m in await collect(ws, 0.1)]
    assert first == ["{not json", '{"u":"x","s":"BTCUSDT","b":1,"B":"1","a":"1","A":"1"}']


async def test_slow_rest_holds_answers(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.slow_rest(0.3, delay=0.15)
    started = time.monotonic()
    async with http.get(f"{sim.rest_url}/api/v3/ping") as r:
        assert r.status == 200
    assert 0.15 <= time.monotonic() - started < 0.3
    sim.slow_rest(0.2)  # no delay given: held to the end of the window
    with pytest.raises(TimeoutError):
        await http.get(f"{sim.rest_url}/api/v3/time", timeout=aiohttp.ClientTimeout(total=0.1))
    await wait_until(lambda: sim.faults.rest_delay(time.monotonic()) == 0)
    started = time.monotonic()
    async with http.get(f"{sim.rest_url}/api/v3/ping") as r:
        assert r.status == 200
    assert time.monotonic() - started < 0.1


@pytest.mark.parametrize(
    ("status", "code"), [(429, -1003), (418, -1003), (500, -1000), (503, -1000)]
)
async def test_injected_rest_errors_then_normal_answers(
    sim: Simulator, http: aiohttp.ClientSession, status: int, code: int
) -> None:
    sim.rest_errors(status, 2, retry_after=3.0)
    url = f"{sim.rest_url}/api/v3/ticker/bookTicker?symbol=BTCUSDT"
    for _ in range(2):
        async with http.get(url) as r:
            assert r.status == status and (await r.json())["code"] == code
            assert "X-MBX-USED-WEIGHT-1M" in r.headers
            if status in (429, 418):
                assert r.headers["Retry-After"] == "3"
    async with http.get(url) as r:
        assert r.status == 200 and (await r.json())["symbol"] == "BTCUSDT"
    assert sim.stats.rest_injected == 2


async def test_cut_lifetime_closes_normally(sim: Simulator, http: aiohttp.ClientSession) -> None:
    async with http.ws_connect(f"{sim.ws_url}{BOTH}") as ws:
        await wait_until(lambda: bool(sim.clients))
        assert sim.cut_lifetime() == 1
        end = await ended(ws)
    assert end.type is aiohttp.WSMsgType.CLOSE and end.data == 1000
    await wait_until(lambda: not sim.clients)
    assert sim.stats.connections[1].close_reason == "lifetime"


async def test_server_shutdown_notice_then_close_after_the_grace(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    async with (
        http.ws_connect(f"{sim.ws_url}{BOTH}") as combined,
        http.ws_connect(f"{sim.ws_url}/ws/btcusdt@bookTicker") as raw,
    ):
        await wait_until(lambda: len(sim.clients) == 2)
        started = time.monotonic()
        assert sim.server_shutdown(grace=0.2) == 2
        got = {}
        for name, ws in (("combined", combined), ("raw", raw)):
            frames = []
            while (msg := await ws.receive(timeout=1.0)).type is TEXT:
                frames.append(orjson.loads(msg.data))
            assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1001
            got[name] = [f for f in frames if "e" in f or f.get("stream") == "!serverShutdown"]
        assert time.monotonic() - started >= 0.2
    (event,) = got["raw"]
    assert set(event) == {"e", "E"} and event["e"] == "serverShutdown"
    assert abs(event["E"] - time.time() * 1000) < 5000
    (wrapped,) = got["combined"]
    assert wrapped["stream"] == "!serverShutdown" and set(wrapped["data"]) == {"e", "E"}


async def test_flap_sends_one_frame_then_drops(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.flap(0.3)
    async with http.ws_connect(f"{sim.ws_url}{BOTH}") as ws:
        messages = await collect(ws, 0.5)
    assert [m.type for m in messages[:1]] == [TEXT] and messages[-1].type is not TEXT
    assert len([m for m in messages if m.type is TEXT]) == 1
    frame = orjson.loads(messages[0].data)
    assert frame["stream"] == "btcusdt@bookTicker" and set(frame["data"]) == {*"usbBaA"}
    async with http.ws_connect(f"{sim.ws_url}/ws") as bare:  # subscribes after the upgrade
        answer = await ask(bare, {"method": "SUBSCRIBE", "params": ["ethusdt@trade"], "id": 1})
        assert answer == {"result": None, "id": 1}
        rest = await collect(bare, 0.5)
    assert rest[0].type is TEXT and len(rest) == 2
    assert orjson.loads(rest[0].data)["e"] == "trade"
    await wait_until(lambda: not sim.faults.flapping(time.monotonic()))
    async with http.ws_connect(f"{sim.ws_url}{BOTH}") as ws:
        assert len(texts(await collect(ws, 0.1))) > 2  # flapping over
    assert [c.close_reason for c in sim.stats.connections.values()][:2] == ["flap", "flap"]


async def test_outage_and_clear(sim: Simulator, http: aiohttp.ClientSession) -> None:
    async with http.ws_connect(f"{sim.ws_url}{BOTH}") as ws:
        await wait_until(lambda: bool(sim.clients))
        sim.outage(30.0)
        assert (await ended(ws)).type is not aiohttp.WSMsgType.CLOSE
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await http.ws_connect(f"{sim.ws_url}{BOTH}")
    sim.stall(30.0)
    sim.silence(30.0)
    sim.slow_rest(30.0)
    sim.rest_errors(500, 10)
    sim.flap(30.0)
    sim.clear()
    async with http.ws_connect(f"{sim.ws_url}{BOTH}") as ws:
        assert len(texts(await collect(ws, 0.1))) > 2
    async with http.get(f"{sim.rest_url}/api/v3/ping") as r:
        assert r.status == 200
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
