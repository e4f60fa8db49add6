"""`--serve`: /metrics parsed by prometheus-client's own parser, /status, /events, the controls."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from foxtrot_stream.contract.plugins import PluginHost
from foxtrot_stream.runtime.feed import Feed
from foxtrot_stream.surfaces.serve import ServeAddressError, StatusServer, parse_address
from foxtrot_stream_binance.simulator import Simulator

from e2e_helpers import Logs, proven, settings_for, wait_for


@pytest.fixture
async def served(
    host: PluginHost, sim: Simulator, make_feed: Any
) -> AsyncIterator[tuple[Feed, StatusServer, aiohttp.ClientSession]]:
    feed, _ = await make_feed(settings_for(host, sim))
    server = StatusServer(lambda: [feed], "127.0.0.1", 0)
    await server.start()
    async with aiohttp.ClientSession() as session:
        yield feed, server, session
    await server.stop()


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


async def test_metrics_parse_with_the_right_types_units_and_labels(
    served: tuple[Feed, StatusServer, aiohttp.ClientSession],
) -> None:
    feed, server, session = served
    await wait_for(lambda: feed.metrics.symbols.get("BTCUSDT", None) is not None
                   and feed.metrics.symbol("BTCUSDT").lat_n >= 3, 5, "trades")  # fmt: skip
    async with session.get(server.url + "metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=")
        text = await resp.text()
    got = families(text)
    types = {name: f.type for name, f in got.items()}
    assert types["foxtrot_stream_ticks"] == "counter"
    assert types["foxtrot_stream_tick_latency_seconds"] == "histogram"
    assert types["foxtrot_stream_updates_per_second"] == "gauge"
    assert types["foxtrot_stream_connection_uptime_seconds"] == "gauge"
    assert types["foxtrot_stream_errors"] == "counter"
    assert types["foxtrot_stream_breaker_state"] == "gauge"
    assert types["foxtrot_stream_clock_offset_seconds"] == "gauge"
    ticks = {s.labels["symbol"]: s.value for s in got["foxtrot_stream_ticks"].samples}
    assert set(ticks) == {"BTCUSDT", "ETHUSDT", "BNBUSDT"} and all(v > 0 for v in ticks.values())
    assert all(s.labels["adapter"] == "binance" for s in got["foxtrot_stream_ticks"].samples)
    hist = [s for s in got["foxtrot_stream_tick_latency_seconds"].samples
            if s.labels.get("symbol") == "BTCUSDT"]  # fmt: skip
    buckets = [s.value for s in hist if s.name.endswith("_bucket")]
    assert buckets == sorted(buckets) and buckets[-1] >= 3  # cumulative, +Inf last
    count = next(s.value for s in hist if s.name.endswith("_count"))
    assert count == buckets[-1]
    breaker = {s.labels["state"]: s.value for s in got["foxtrot_stream_breaker_state"].samples}
    assert breaker == {"CLOSED": 1.0, "OPEN": 0.0, "HALF_OPEN": 0.0, "EXHAUSTED": 0.0}
    transport = {
        (s.labels["symbol"], s.labels["transport"]): s.value
        for s in got["foxtrot_stream_symbol_transport"].samples
    }
    assert transport[("BTCUSDT", "websocket")] == 1.0 and transport[("BTCUSDT", "http")] == 0.0
    # the connect budget is per host: 127.0.0.1 here
    assert {s.labels["host"] for s in got["foxtrot_stream_connect_attempts"].samples}


async def test_status_and_events_carry_the_same_plain_data(
    served: tuple[Feed, StatusServer, aiohttp.ClientSession],
) -> None:
    _, server, session = served
    async with session.get(server.url + "status") as resp:
        status = await resp.json()
    adapter = status["adapters"][0]
    assert adapter["adapter"] == "binance" and adapter["display_name"] == "BinanceAdapter"
    assert set(adapter["symbols"]) == {"BTCUSDT", "ETHUSDT", "BNBUSDT"}
    async with session.get(server.url + "events") as resp:
        assert resp.headers["Content-Type"] == "text/event-stream"
        seen = []
        async for line in resp.content:
            if line.startswith(b"data: "):
                seen.append(json.loads(line[6:]))
                if len(seen) == 2:
                    break
    assert seen[1]["generated_at"] > seen[0]["generated_at"]
    assert seen[1]["adapters"][0]["adapter"] == "binance"


async def test_reset_from_loopback_works_and_a_foreign_origin_is_refused(
    served: tuple[Feed, StatusServer, aiohttp.ClientSession], sim: Simulator, logs: Logs
) -> None:
    feed, server, session = served
    await wait_for(proven(feed), 5, "streaming")
    sim.outage(30)
    await wait_for(
        lambda: feed.status()["connections"][0]["breaker"] == "OPEN", 5, "the breaker open"
    )
    evil = {"Origin": "http://attacker.example"}
    async with session.post(server.url + "reset?adapter=binance", headers=evil) as resp:
        assert resp.status == 403
        assert "cross-origin" in (await resp.json())["error"]
    assert feed.status()["connections"][0]["breaker"] in ("OPEN", "HALF_OPEN")
    async with session.post(server.url + "reset?adapter=nosuch") as resp:
        assert resp.status == 404
    async with session.post(server.url + "reset?adapter=binance&connection=x") as resp:
        assert resp.status == 400
    sim.clear()
    async with session.post(server.url + "reset?adapter=binance") as resp:
        assert resp.status == 200
        assert (await resp.json())["reset"] == 1
    await wait_for(lambda: feed.status()["state"] == "streaming", 5, "streaming again")
    assert logs.count("reset requested from 127.0.0.1 (adapter binance, connection all)") == 1


async def test_a_server_not_bound_to_loopback_wants_the_token(
    served: tuple[Feed, StatusServer, aiohttp.ClientSession],
) -> None:
    _, server, session = served
    server.loopback = False  # as if bound to 0.0.0.0: loopback callers no longer suffice
    async with session.post(server.url + "reset") as resp:
        assert resp.status == 403 and "token" in (await resp.json())["error"]
    async with session.post(server.url + "reset", headers={"X-Foxtrot-Token": "wrong"}) as resp:
        assert resp.status == 403
    async with session.post(server.url + "reset", headers={"X-Foxtrot-Token": server.token}) as r:
        assert r.status == 200 and (await r.json())["reset"] == 0  # nothing was open


def test_serve_addresses() -> None:
    assert parse_address("8765") == ("127.0.0.1", 8765)
    assert parse_address(":8765") == ("127.0.0.1", 8765)
    assert parse_address("0.0.0.0:80") == ("0.0.0.0", 80)
    assert parse_address("[::1]:9000") == ("::1", 9000)
    for bad in ("host:", "x", "1:99999", "a:b"):
        with pytest.raises(ServeAddressError, match="expected HOST:PORT"):
            parse_address(bad)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "foxtrot_stream", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_bad_serve_address_exits_2_without_a_traceback() -> None:
    done = _cli("demo", "--serve", "localhost:http", "--duration", "1")
    assert done.returncode == 2
    assert "--serve 'localhost:http': expected HOST:PORT" in done.stderr
    assert "Traceback" not in done.stderr


async def test_a_port_in_use_exits_2_naming_it() -> None:
    blocker = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = blocker.sockets[0].getsockname()[1]
    try:
        done = await asyncio.to_thread(
            _cli, "demo", "--serve", f"127.0.0.1:{port}", "--duration", "5", "--format", "log"
        )
    finally:
        blocker.close()
    assert done.returncode == 2, done.stderr
    assert f"--serve 127.0.0.1:{port}: cannot listen there" in done.stderr
    assert "Traceback" not in done.stderr
