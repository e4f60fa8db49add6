"""One symbol going silent on a busy connection; a quiet market that must not trigger anything."""

from __future__ import annotations

import time
from typing import Any

from foxtrot_stream.model import TransportKind
from foxtrot_stream.plugins import PluginHost
from foxtrot_stream_binance.simulator import Simulator, SimulatorConfig

from e2e_helpers import Logs, settings_for, wait_for

WS, HTTP = TransportKind.WEBSOCKET, TransportKind.HTTP


async def test_one_silent_symbol_is_resubscribed_then_polled_alone(
    host: PluginHost, sim: Simulator, make_feed: Any, logs: Logs
) -> None:
    feed, rec = await make_feed(settings_for(host, sim))
    await wait_for(lambda: all(rec.of(s, WS) for s in ("BTCUSDT", "ETHUSDT", "BNBUSDT")), 5, "ws")
    await wait_for(lambda: time.time() > rec.ticks[0][0] + 1.0, 2, "a second of pace")
    requests = len(sim.stats.subscribe_requests)
    silenced = time.time()
    sim.silence(2.5, symbols=["ETHUSDT"])
    await wait_for(lambda: feed.counters.stale_resubscribes == 1, 3, "a resubscribe")
    assert logs.count("ETHUSDT: no update for") == 1
    assert len(sim.stats.subscribe_requests) == requests + 1  # the resubscribe reached the server
    await wait_for(lambda: feed.counters.stale_polled == 1, 3, "ETHUSDT polled alone")
    await wait_for(lambda: rec.first_after(silenced, HTTP) is not None, 2, "ETHUSDT over HTTP")
    assert {t.symbol for at, t in rec.ticks if at > silenced and t.transport is HTTP} == {"ETHUSDT"}
    assert feed.poller is not None and feed.poller.symbols == {"ETHUSDT"}
    assert feed.describe_symbol("BTCUSDT")[0] == "websocket"
    assert feed.counters.failures == {}  # the connection itself was never at fault
    await wait_for(lambda: not feed.poller.symbols, 4, "ETHUSDT back on WebSocket")  # type: ignore[union-attr]
    assert logs.count("ETHUSDT: updates again on WebSocket") == 1
    rec.assert_no_duplicate_or_out_of_order()


async def test_a_quiet_steady_symbol_triggers_nothing(
    host: PluginHost, make_feed: Any, logs: Logs
) -> None:
    config = SimulatorConfig(
        symbols=("BTCUSDT", "ILLQUSDT"), rate=30.0, rates={"ILLQUSDT": 1.5}, trade_ratio=0.0
    )
    async with Simulator(config) as sim:
        feed, rec = await make_feed(settings_for(host, sim), ("BTCUSDT", "ILLQUSDT"))
        start = time.time()
        await wait_for(lambda: time.time() > start + 4.0, 5, "four seconds")
        assert len(rec.of("ILLQUSDT", WS)) >= 4
        assert feed.counters.stale_resubscribes == 0
        assert feed.counters.failures == {}
        assert not rec.of("ILLQUSDT", HTTP)
        assert logs.count("no update for") == 0
        await feed.stop()
