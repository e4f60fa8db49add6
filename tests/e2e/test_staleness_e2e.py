"""One symbol going silent on a busy connection; a quiet market that must not trigger anything."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from foxtrot_stream.contract.model import TransportKind
from foxtrot_stream.contract.plugins import PluginHost
from foxtrot_stream_binance.simulator import Simulator, SimulatorConfig

from e2e_helpers import MAX_GAP, Logs, proven, settings_for, wait_for

WS, HTTP = TransportKind.WEBSOCKET, TransportKind.HTTP


async def test_one_silent_symbol_is_polled_resubscribed_then_streamed_again(
    host: PluginHost, sim: Simulator, make_feed: Any, logs: Logs
) -> None:
    feed, rec = await make_feed(settings_for(host, sim))
    await wait_for(proven(feed), 5, "streaming")
    requests = len(sim.stats.subscribe_requests)
    silenced = time.time()
    sim.silence(2.5, symbols=["ETHUSDT"])
    # quiet for half a heartbeat: REST verifies it, shows it changing: the WebSocket lost it
    await wait_for(lambda: feed.counters.stale_resubscribes == 1, 3, "a resubscribe")
    assert logs.count("ETHUSDT: no update on its live WebSocket while REST shows it") == 1
    await wait_for(
        lambda: len(sim.stats.subscribe_requests) == requests + 1, 2, "the resubscribe sent"
    )
    await wait_for(lambda: feed.counters.stale_polled == 1, 3, "ETHUSDT still stale")
    assert {t.symbol for at, t in rec.ticks if at > silenced and t.transport is HTTP} == {"ETHUSDT"}
    assert feed.describe_symbol("ETHUSDT")[0] == "http"
    assert feed.status()["symbols"]["ETHUSDT"]["stale_on_websocket"]
    assert feed.describe_symbol("BTCUSDT")[0] == "websocket"
    assert feed.counters.failures == {}  # the connection itself was never at fault
    await wait_for(proven(feed, ("ETHUSDT",)), 4, "ETHUSDT back on WebSocket")
    assert feed.poller is not None and not feed.poller.symbols
    handed = [line for line in logs.lines() if "WebSocket streams" in line and "ETHUSDT" in line]
    assert len(handed) == 2  # proven at start, and again
    assert rec.max_gap("ETHUSDT", since=silenced - 0.5) < MAX_GAP
    rec.assert_no_duplicate_or_out_of_order()


async def test_a_quiet_steady_symbol_is_verified_not_restarted(
    host: PluginHost, make_feed: Any, logs: Logs
) -> None:
    """A symbol slower than half a heartbeat is polled while quiet, to verify it did not
    change; REST confirms, so nothing is resubscribed, failed or shown as not streaming."""
    config = SimulatorConfig(
        symbols=("BTCUSDT", "ILLQUSDT"), rate=30.0, rates={"ILLQUSDT": 1.5}, trade_ratio=0.0
    )
    async with Simulator(config) as sim:
        feed, rec = await make_feed(settings_for(host, sim), ("BTCUSDT", "ILLQUSDT"))
        await wait_for(proven(feed, ("BTCUSDT", "ILLQUSDT")), 5, "streaming")
        start = time.time()
        shown: set[str] = set()
        while time.time() < start + 4.0:
            shown.add(feed.describe_symbol("ILLQUSDT")[0])
            await asyncio.sleep(0.05)
        assert len(rec.of("ILLQUSDT", WS)) >= 4
        assert shown == {"websocket"}
        assert feed.counters.stale_resubscribes == 0
        assert feed.counters.failures == {}
        assert logs.count("no update on its live WebSocket") == 0
        assert sim.stats.rest_by_path.get("/api/v3/ticker/bookTicker", 0) >= 4  # verified
        rec.assert_no_duplicate_or_out_of_order()
        await feed.stop()
