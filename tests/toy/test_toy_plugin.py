"""What other exchanges need from the core, shown with a plugin that uses only the public API:
an application heartbeat, no update ids, a subscription refused per item."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from toy_exchange import ToyExchange
from toy_plugin import ToyPlugin

from foxtrot_stream.config.settings import load
from foxtrot_stream.contract.model import Tick, TransportKind
from foxtrot_stream.contract.plugins import GROUP, Origin, PluginHost, discover_entry_points
from foxtrot_stream.runtime.feed import Feed
from foxtrot_stream.testing.settings import FAST_SETTINGS

SYMBOLS = ("AAA", "BBB", "CCC")
CORE_AND_HTTP = ("foxtrot_stream", "foxtrot_stream_http_fallback")


def host_with(plugin: ToyPlugin) -> PluginHost:
    eps = [
        ep
        for ep in discover_entry_points(GROUP)
        if ep.value.split(":")[0].split(".")[0]
        in ("foxtrot_stream", "foxtrot_stream_http_fallback")
    ]
    host = PluginHost.discover(eps)
    host.register(plugin, Origin("toy", "tests", "tests", "0"))
    return host


async def stream(
    plugin: ToyPlugin, exchange: ToyExchange, seconds: float
) -> tuple[Feed, list[Tick]]:
    host = host_with(plugin)
    values = FAST_SETTINGS | {"toy.ws_url": exchange.ws_url, "toy.rest_url": exchange.rest_url}
    settings = load(text=json.dumps(values), schema=host.schema()).settings
    feed = Feed(host, settings, "toy")
    got: list[Tick] = []
    feed.add_consumer(got.append)
    await feed.start(SYMBOLS)
    await asyncio.sleep(seconds)
    return feed, got


async def test_an_application_heartbeat_keeps_the_connection() -> None:
    """The exchange answers only its text `ping` and closes a connection on which the client
    sent nothing for 1.5 s: with the adapter's `AppHeartbeat` and `max_idle`, one connection
    lasts the whole run."""
    async with ToyExchange(SYMBOLS, idle=1.5) as exchange:
        feed, got = await stream(ToyPlugin(idle=1.5), exchange, 3.5)
        try:
            assert exchange.stats.connections == 1 and exchange.stats.idle_closes == 0
            assert exchange.stats.app_pings >= 3 and exchange.stats.protocol_pings == 0
            assert feed.counters.failures == {}
            assert {t.symbol for t in got if t.transport is TransportKind.WEBSOCKET} == set(SYMBOLS)
        finally:
            await feed.stop()


async def test_without_it_the_exchange_never_answers_and_the_feed_reconnects() -> None:
    """The same exchange, the adapter without `AppHeartbeat`: protocol pings go unanswered
    (pong timeouts), so the heartbeat declaration is what the test above relies on."""
    async with ToyExchange(SYMBOLS, idle=30.0) as exchange:
        feed, _ = await stream(ToyPlugin(heartbeat=False), exchange, 3.5)
        try:
            assert exchange.stats.protocol_pings >= 1
            assert feed.counters.failures.get("pong_timeout", 0) >= 1
        finally:
            await feed.stop()


async def test_ticks_without_ids_arrive_in_time_order_without_duplicates() -> None:
    async with ToyExchange(SYMBOLS, rate=40.0) as exchange:
        feed, got = await stream(ToyPlugin(), exchange, 2.0)
        await feed.stop()
    streamed = [t for t in got if t.transport is TransportKind.WEBSOCKET]
    assert len(streamed) > 60  # delivered, not dropped as duplicates (seq and trade_id None)
    for symbol in SYMBOLS:
        times = [t.exchange_ts for t in streamed if t.symbol == symbol]
        assert times == sorted(times)
    assert feed.sequencer.counts.duplicate < len(streamed)


async def test_a_subscription_refused_per_item_is_polled_and_says_why() -> None:
    async with ToyExchange(SYMBOLS, refused=["BBB"]) as exchange:
        feed, got = await stream(ToyPlugin(), exchange, 2.5)
        try:
            status: dict[str, Any] = feed.status()["symbols"]["BBB"]
            assert status["transport"] == "http"
            assert "subscription refused" in status["reason"] and "not allowed" in status["reason"]
            assert feed.counters.rejected >= 1
            polled = [t for t in got if t.symbol == "BBB"]
            assert polled and all(t.transport is TransportKind.HTTP for t in polled)
            assert feed.describe_symbol("AAA")[0] == "websocket"
            assert time.time() > 0
        finally:
            await feed.stop()
