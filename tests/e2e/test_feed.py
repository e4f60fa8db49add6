"""Routing, the guide's rollback procedures, live (un)subscribe, sharding and shutdown."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from foxtrot_stream.contract.model import TransportKind
from foxtrot_stream.contract.plugins import PluginHost
from foxtrot_stream.runtime.feed import Feed
from foxtrot_stream_binance.simulator import Simulator, SimulatorConfig, synthetic_symbols

from e2e_helpers import Logs, Recorder, proven, settings_for, wait_for

WS, HTTP = TransportKind.WEBSOCKET, TransportKind.HTTP


async def test_quick_disable_polls_everything_and_opens_no_websocket(
    host: PluginHost, sim: Simulator, make_feed: Any, logs: Logs
) -> None:
    _feed, rec = await make_feed(settings_for(host, sim, websocket__enabled=False))
    await wait_for(lambda: all(rec.of(s, HTTP) for s in ("BTCUSDT", "ETHUSDT")), 3, "polling")
    assert sim.stats.connection_attempts == 0
    assert all(t.transport is HTTP for _, t in rec.ticks)
    assert logs.count("(websocket.enabled is false)") == 1
    rec.assert_no_duplicate_or_out_of_order()


async def test_per_adapter_disable(host: PluginHost, sim: Simulator, make_feed: Any) -> None:
    settings = settings_for(host, sim, websocket__binance__enabled=False)
    feed, rec = await make_feed(settings)
    await wait_for(lambda: bool(rec.of("BNBUSDT", HTTP)), 3, "polling")
    assert sim.stats.connection_attempts == 0
    assert feed.describe_symbol("BNBUSDT") == ("http", "—")


async def test_per_symbol_fallback(host: PluginHost, sim: Simulator, make_feed: Any) -> None:
    settings = settings_for(host, sim, websocket__binance__symbols=["BTCUSDT", "ETHUSDT"])
    feed, rec = await make_feed(settings)
    await wait_for(
        lambda: bool(rec.of("BTCUSDT", WS) and rec.of("ETHUSDT", WS) and rec.of("BNBUSDT", HTTP)),
        4,
        "BTC and ETH streamed, BNB polled",
    )
    assert not rec.of("BNBUSDT", WS)
    # BTC and ETH are polled only until their WebSocket has proven itself
    await wait_for(proven(feed, ("BTCUSDT", "ETHUSDT")), 3, "BTC and ETH handed to the WebSocket")
    assert rec.transports("BTCUSDT")[-1] == "websocket"
    assert sim.stats.connection_attempts == 1
    assert feed.poller is not None and feed.poller.symbols == {"BNBUSDT"}
    assert feed.describe_symbol("BNBUSDT") == ("http", "—")


async def test_live_subscribe_and_unsubscribe(
    host: PluginHost, sim: Simulator, make_feed: Any
) -> None:
    feed, rec = await make_feed(settings_for(host, sim), ("BTCUSDT",))
    await wait_for(lambda: bool(rec.of("BTCUSDT", WS)), 4, "BTCUSDT")
    assert await feed.subscribe(["ethusdt"]) == {}
    await wait_for(lambda: bool(rec.of("ETHUSDT", WS)), 4, "ETHUSDT over the same connection")
    assert sim.stats.connection_attempts == 1
    assert sim.stats.subscribe_requests[-1][1] == 2  # bookTicker + trade in one request
    await feed.unsubscribe(["BTCUSDT"])
    await asyncio.sleep(0.2)
    stopped = time.time()
    await wait_for(lambda: rec.first_after(stopped, WS) is not None, 3, "ETH still flowing")
    assert not [t for at, t in rec.ticks if at > stopped + 0.1 and t.symbol == "BTCUSDT"]
    (client,) = sim.clients.values()
    assert client.streams == {"ethusdt@bookTicker", "ethusdt@trade"}


async def test_unknown_symbol_is_refused_by_name_and_the_others_go_on(
    host: PluginHost, sim: Simulator, make_feed: Any, logs: Logs
) -> None:
    feed, rec = await make_feed(settings_for(host, sim), ("BTCUSDT", "NOPEUSDT"))
    await wait_for(lambda: bool(rec.of("BTCUSDT", WS)), 4, "BTCUSDT")
    assert "NOPEUSDT" in feed.refused
    assert (
        logs.count("BinanceAdapterError: NOPEUSDT refused: NOPEUSDT is not listed on Binance") == 1
    )
    assert "NOPEUSDT" not in feed.symbols


async def test_more_than_1024_streams_are_sharded_and_subscriptions_paced(
    host: PluginHost, make_feed: Any
) -> None:
    symbols = synthetic_symbols(600)  # 1,200 streams: two connections
    config = SimulatorConfig(symbols=symbols, rate=1.0, seed=5)
    async with Simulator(config) as sim:
        settings = settings_for(host, sim, websocket__heartbeat__interval=1.0)
        feed, rec = await make_feed(settings, symbols)
        await wait_for(lambda: len({t.symbol for _, t in rec.ticks}) > 550, 20, "most symbols")
        assert len(feed.shards) == 2
        assert sim.stats.max_streams_per_connection <= 1024
        assert sim.stats.connection_attempts == 2
        assert sim.stats.rate_limit_disconnects == 0
        assert sim.stats.max_incoming_per_second <= 5
        # the rest of each shard beyond the URL's streams went by batched SUBSCRIBE requests
        assert sim.stats.subscribe_requests and all(
            n <= 200 for _, n in sim.stats.subscribe_requests
        )
        assert feed.counters.failures == {}
        await feed.stop()


async def test_stop_closes_everything_and_delivers_what_was_received(
    host: PluginHost, sim: Simulator
) -> None:
    feed = Feed(host, settings_for(host, sim, websocket__binance__symbols=["BTCUSDT"]), "binance")
    rec = Recorder()
    feed.add_consumer(rec)
    await feed.start(["BTCUSDT", "ETHUSDT"])
    await wait_for(lambda: bool(rec.of("BTCUSDT", WS) and rec.of("ETHUSDT", HTTP)), 4, "both")
    await feed.stop()
    assert feed.sequencer.counts.delivered == len(rec.ticks)
    await asyncio.sleep(0.1)
    assert not sim.clients  # the server saw the connection close
    leftover = [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("binance-")]
    assert leftover == []
    count = len(rec.ticks)
    await asyncio.sleep(0.3)
    assert len(rec.ticks) == count  # nothing after stop


async def test_a_consumer_that_raises_does_not_stop_the_others(
    host: PluginHost, sim: Simulator, make_feed: Any, logs: Logs
) -> None:
    feed, rec = await make_feed(settings_for(host, sim), ("BTCUSDT",))

    def broken(_tick: object) -> None:
        raise ValueError("consumer bug")

    feed.add_consumer(broken)
    before = len(rec.ticks)
    await wait_for(lambda: len(rec.ticks) > before + 5, 3, "ticks")
    assert feed.counters.consumer_errors >= 5
    assert logs.count("consumer") == 1


async def test_polling_pauses_near_the_weight_allowance_instead_of_getting_429(
    host: PluginHost, logs: Logs
) -> None:
    config = SimulatorConfig(symbols=("BTCUSDT", "ETHUSDT"), rate=20.0, weight_limit=60)
    async with Simulator(config) as sim:
        settings = settings_for(host, sim, websocket__enabled=False, http_fallback__interval=0.05)
        feed = Feed(host, settings, "binance")
        try:
            await feed.start(["BTCUSDT", "ETHUSDT"])
            await wait_for(lambda: getattr(feed.poller, "weight_holds", 0) == 1, 5, "a pause")
            polls = sim.stats.rest_by_path.get("/api/v3/ticker/bookTicker", 0)
            await asyncio.sleep(0.5)
            assert sim.stats.rest_by_path.get("/api/v3/ticker/bookTicker", 0) == polls
            assert sim.stats.rest_throttled == 0  # never refused: we stopped first
            assert logs.count("request weight this minute: pausing") == 1
        finally:
            await feed.stop()
