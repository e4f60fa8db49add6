"""Starting and stopping: loopback only, ephemeral ports, no leftover tasks or sockets."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from sim_helpers import config, ended, next_json, wait_until

from foxtrot_stream_binance.simulator import Simulator, SimulatorConfig, start_simulator


def _ours() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("simulator-")]


async def test_ephemeral_port_urls_and_stop_closing_every_websocket() -> None:
    async with Simulator(config()) as sim, aiohttp.ClientSession() as http:
        assert sim.port > 0
        assert sim.ws_url == f"ws://127.0.0.1:{sim.port}"
        assert sim.rest_url == f"http://127.0.0.1:{sim.port}"
        assert sim.settings() == {"binance.ws_url": sim.ws_url, "binance.rest_url": sim.rest_url}
        ws = await http.ws_connect(f"{sim.ws_url}/ws/btcusdt@bookTicker")
        assert await next_json(ws)
        assert _ours()
        await sim.stop()
        end = await ended(ws)
        assert end.type is aiohttp.WSMsgType.CLOSE and end.data == 1001
        await ws.close()
        await sim.stop()  # idempotent
        assert not _ours() and not sim.clients
        assert sim.stats.connections[1].close_reason == "stopped"
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.get(f"{sim.rest_url}/api/v3/ping")


async def test_stop_cuts_a_client_that_never_answers_the_close() -> None:
    sim = await Simulator(config(close_timeout=0.1)).start()
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    writer.write(
        b"GET /ws/btcusdt@trade HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    assert b"101" in await reader.readline()
    await wait_until(lambda: bool(sim.clients))
    await asyncio.wait_for(sim.stop(), 2.0)  # a raw socket that never reads nor answers
    assert not _ours()
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
    assert not _ours()


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
