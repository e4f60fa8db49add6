"""Starting and stopping: loopback only, ephemeral ports, no leftover tasks or sockets."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from foxtrot_stream_binance.simulator import Simulator, SimulatorConfig, start_simulator

from simwire import config, eventually, leftover_tasks, read_json, stream_url, until_end

BOOKS = ("btcusdt@bookTicker", "ethusdt@bookTicker")


async def _rest_status(http: aiohttp.ClientSession, sim: Simulator) -> int:
    async with http.get(f"{sim.rest_url}/api/v3/ping") as r:
        return r.status


async def test_ephemeral_port_urls_and_stop_closing_every_websocket() -> None:
    async with Simulator(config()) as sim, aiohttp.ClientSession() as http:
        assert sim.port > 0
        assert sim.ws_url == f"ws://127.0.0.1:{sim.port}"
        assert sim.rest_url == f"http://127.0.0.1:{sim.port}"
        assert sim.settings() == {"binance.ws_url": sim.ws_url, "binance.rest_url": sim.rest_url}
        ws = await http.ws_connect(f"{sim.ws_url}/ws/btcusdt@bookTicker")
        assert await read_json(ws)
        assert leftover_tasks()
        await sim.stop()
        ending = await until_end(ws)
        assert ending.clean and ending.code == 1001
        await ws.close()
        await sim.stop()  # idempotent
        assert not leftover_tasks() and not sim.clients
        assert sim.stats.connections[1].close_reason == "stopped"
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.get(f"{sim.rest_url}/api/v3/ping")


async def test_stop_leaves_nothing_behind() -> None:
    sim = await Simulator(config(ping_interval=0.2, close_timeout=0.3)).start()
    async with aiohttp.ClientSession() as http:
        reading = await http.ws_connect(stream_url(sim, *BOOKS))
        deaf = await http.ws_connect(stream_url(sim, *BOOKS))  # never reads: no close reply
        noticed = await http.ws_connect(f"{sim.ws_url}/ws")
        await read_json(reading)
        sim.server_shutdown(grace=5.0)  # a close scheduled for later
        sim.slow_rest(5.0)
        held = asyncio.create_task(_rest_status(http, sim))  # a REST answer being held
        await eventually(lambda: sim.stats.rest_requests == 1)

        started = time.monotonic()
        await sim.stop()
        assert time.monotonic() - started < 2.0
        await sim.stop()  # idempotent
        assert not leftover_tasks()
        assert not sim.clients
        assert all(c.closed_at is not None for c in sim.stats.connections.values())
        ending = await until_end(reading)
        assert ending.code in (1001, 1006)
        with pytest.raises((aiohttp.ClientError, asyncio.TimeoutError)):
            await asyncio.wait_for(held, 0.3)
        for ws in (reading, deaf, noticed):
            await ws.close()
    await asyncio.sleep(0)
    others = asyncio.all_tasks() - {asyncio.current_task()}
    assert not others, others


async def test_stop_cuts_a_client_that_never_answers_the_close() -> None:
    sim = await Simulator(config(close_timeout=0.1)).start()
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    writer.write(
        b"GET /ws/btcusdt@trade HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    assert b"101" in await reader.readline()
    await eventually(lambda: bool(sim.clients))
    await asyncio.wait_for(sim.stop(), 2.0)  # a raw socket that never reads nor answers
    assert not leftover_tasks()
    writer.close()


async def test_loopback_only() -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.1 only"):
        Simulator(host="0.0.0.0")
    with pytest.raises(ValueError):
        Simulator(host="localhost")


async def test_a_busy_port_fails_to_start_and_leaves_nothing_behind() -> None:
    async with Simulator(config()) as first:
        second = Simulator(config(port=first.port))
        with pytest.raises(OSError):
            await second.start()
        await second.stop()
    assert not leftover_tasks()


async def test_starting_twice_is_refused() -> None:
    async with Simulator(config()) as sim:
        with pytest.raises(RuntimeError):
            await sim.start()


async def test_the_demo_entry_point() -> None:
    sim = await start_simulator(["BTCUSDT", "ETHUSDT"], 5.0)
    try:
        assert list(sim.paths) == ["BTCUSDT", "ETHUSDT"] and sim.config.rate == 5.0
        sim.outage(0.1)
    finally:
        await sim.stop()


@pytest.mark.parametrize(
    "bad",
    [
        {"rate": -1.0},
        {"ping_interval": 0.0},
        {"symbols": ("BTC/USDT",)},
        {"rates": {"BTCUSDT": float("nan")}},
        {"statuses": {"BTCUSDT": "OPEN"}},
        {"trade_ratio": 1.5},
    ],
)
def test_config_is_validated(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SimulatorConfig(**bad)  # type: ignore[arg-type]


def test_config_normalises_symbols_and_adds_synthetic_ones() -> None:
    c = SimulatorConfig(
        symbols=("btcusdt", "ETHUSDT", "BTCUSDT"), synthetic=3, rates={"ethusdt": 0}
    )
    assert c.all_symbols() == ("BTCUSDT", "ETHUSDT", "S0000USDT", "S0001USDT", "S0002USDT")
    assert c.rate_of("ETHUSDT") == 0.0 and c.rate_of("BTCUSDT") == c.rate
