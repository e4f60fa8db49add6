"""The real feed against the OKX simulator: the text heartbeat driven by `max_idle`, faults."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest

from foxtrot_stream import Tick, TransportKind
from foxtrot_stream.config.settings import load
from foxtrot_stream.contract.plugins import PluginHost
from foxtrot_stream.runtime.feed import Feed
from foxtrot_stream.testing.settings import FAST_SETTINGS
from foxtrot_stream_okx import adapter as okx_adapter
from foxtrot_stream_okx.simulator import OkxSimulator

SYMBOLS = ("BTC-USDT", "ETH-USDT")


@asynccontextmanager
async def streaming(
    sim: OkxSimulator, extra: dict[str, Any] | None = None
) -> AsyncIterator[tuple[Feed, list[Tick]]]:
    host = PluginHost.discover()
    values = FAST_SETTINGS | sim.settings() | (extra or {})
    feed = Feed(host, load(text=json.dumps(values), schema=host.schema()).settings, "okx")
    got: list[Tick] = []
    feed.add_consumer(got.append)
    await feed.start(SYMBOLS)
    try:
        yield feed, got
    finally:
        await feed.stop()


async def test_max_idle_alone_keeps_a_quiet_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """The simulator closes a connection the client was silent on for 1.5 s (OKX: 30 s); with
    a heartbeat interval far longer, the adapter's `max_idle` alone makes the feed send its
    text `ping` in time: one connection, no idle close."""
    limits = attrs.evolve(okx_adapter.LIMITS, max_idle=1.5)
    monkeypatch.setattr(okx_adapter.OkxAdapter, "limits", limits)
    quiet = {"websocket.heartbeat.interval": 30.0}
    async with (
        OkxSimulator(SYMBOLS, rate=10.0, idle=1.5) as sim,
        streaming(sim, quiet) as (feed, got),
    ):
        await asyncio.sleep(4.0)
        assert sim.stats.connections == 1 and sim.stats.idle_closes == 0
        assert sim.stats.app_pings >= 2
        assert feed.counters.failures == {}
        assert {t.symbol for t in got if t.transport is TransportKind.WEBSOCKET} == set(SYMBOLS)


async def test_garbage_is_counted_and_streaming_goes_on() -> None:
    async with OkxSimulator(SYMBOLS, rate=10.0) as sim, streaming(sim) as (feed, got):
        await asyncio.sleep(1.0)
        sent = sim.garbage(5)
        before = len(got)
        await asyncio.sleep(1.0)
        assert sent == 5 and feed.counters.malformed >= 5
        assert len(got) > before and feed.counters.failures == {}


async def test_a_service_upgrade_notice_moves_to_a_new_connection() -> None:
    async with OkxSimulator(SYMBOLS, rate=10.0) as sim, streaming(sim) as (feed, _):
        await asyncio.sleep(1.0)
        assert sim.notice(grace=0.5) == 1
        await asyncio.sleep(2.5)
        assert sim.stats.connections >= 2
        assert all(feed.describe_symbol(s)[0] == "websocket" for s in SYMBOLS), feed.status()


async def test_flapping_connections_leave_the_symbols_polled() -> None:
    async with OkxSimulator(SYMBOLS, rate=10.0) as sim, streaming(sim) as (_, got):
        await asyncio.sleep(1.0)
        sim.flap(3.0)
        sim.drop_all()
        await asyncio.sleep(3.0)
        assert sim.stats.connections >= 3
        polled = [t for t in got if t.transport is TransportKind.HTTP]
        assert {t.symbol for t in polled} == set(SYMBOLS)
