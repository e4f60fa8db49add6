"""What a user sees when the network misbehaves: each scripted fault, end to end."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

from foxtrot_stream.contract.model import TransportKind
from foxtrot_stream.contract.plugins import PluginHost
from foxtrot_stream.policy.breaker import BreakerState
from foxtrot_stream_binance.simulator import Simulator

from e2e_helpers import MAX_GAP, Logs, Recorder, proven, settings_for, wait_for

WS, HTTP = TransportKind.WEBSOCKET, TransportKind.HTTP
POLL = 0.2


def streaming(rec: Recorder, symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT", "BNBUSDT")) -> Any:
    return lambda: all(rec.of(s, WS) for s in symbols)


async def test_streams_over_websocket_with_the_guides_log_line(
    host: PluginHost, sim: Simulator, make_feed: Any, logs: Logs
) -> None:
    feed, rec = await make_feed(settings_for(host, sim))
    await wait_for(streaming(rec), 5, "WebSocket ticks for every symbol")
    # polled from the start, handed to the WebSocket once it has delivered for a heartbeat
    await wait_for(proven(feed), 3, "the WebSocket to take every symbol over")
    assert logs.count("BinanceAdapter: WebSocket connection established") == 1
    t = rec.of("BTCUSDT", WS)[-1]
    assert t.bid < t.ask and t.seq is not None and t.received_ts > 0
    assert feed.describe_symbol("BTCUSDT") == ("websocket", "CLOSED")
    assert feed.poller is not None and not feed.poller.symbols
    for symbol in ("BTCUSDT", "ETHUSDT", "BNBUSDT"):
        assert rec.transports(symbol)[-1] == "websocket"
        assert rec.max_gap(symbol) < MAX_GAP
    rec.assert_no_duplicate_or_out_of_order()


async def test_dropped_connection_reconnects_after_the_first_backoff_delay(
    host: PluginHost, sim: Simulator, make_feed: Any, logs: Logs
) -> None:
    feed, rec = await make_feed(settings_for(host, sim))
    await wait_for(proven(feed), 5, "streaming")
    attempts = sim.stats.connection_attempts
    dropped_at = time.time()
    sim.drop_all()
    await wait_for(lambda: logs.count("connection established") == 2, 5, "a reconnect")
    assert "BinanceAdapterWebSocket: Reconnecting... (attempt 1, delay 0.05s)" in logs.lines()
    assert logs.count("BinanceAdapterError: WebSocket error... dropped") == 1
    assert sim.stats.connection_attempts == attempts + 1
    await wait_for(lambda: rec.first_after(dropped_at + 0.05, WS) is not None, 5, "ticks again")
    assert feed.breaker_states() == {1: BreakerState.CLOSED}
    # one drop: the breaker stays CLOSED, but the symbols are polled from the moment the
    # connection is gone until the new one has delivered for a heartbeat
    await wait_for(proven(feed), 3, "the WebSocket to take every symbol back")
    for symbol in ("BTCUSDT", "ETHUSDT", "BNBUSDT"):
        assert rec.transports(symbol)[-1] == "websocket"
        assert rec.max_gap(symbol, since=dropped_at - 1.0) < MAX_GAP, symbol
    rec.assert_no_duplicate_or_out_of_order()


async def test_refused_upgrades_open_the_breaker_then_websocket_recovers(
    host: PluginHost, sim: Simulator, make_feed: Any, logs: Logs
) -> None:
    feed, rec = await make_feed(settings_for(host, sim))
    await wait_for(proven(feed), 5, "streaming")
    dropped_at = time.time()
    sim.refuse_upgrades(1.6)
    sim.drop_all()
    await wait_for(
        lambda: logs.count("circuit breaker OPEN after 3") == 1, 5, "the breaker to open"
    )
    opened = logs.when("circuit breaker OPEN after 3")
    # polled from the drop, not from the breaker's opening (the first answer may repeat the
    # last streamed quote, which is not delivered again: then the next poll's is)
    await wait_for(lambda: rec.first_after(dropped_at, HTTP) is not None, 2, "an HTTP tick")
    first_http = rec.first_after(dropped_at, HTTP)
    assert first_http is not None and first_http - dropped_at <= POLL + 0.1, first_http
    # backoff delays actually waited before the reconnection attempts: 0.05 then 0.1 s
    drop = next(at for at, what in sim.faults.log if what == "drop_all")
    times = [drop, *sim.stats.attempt_times[-2:]]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert 0.05 <= gaps[0] < 0.05 + 0.15 and 0.1 <= gaps[1] < 0.1 + 0.15, gaps
    await wait_for(lambda: logs.count("circuit breaker CLOSED (was HALF_OPEN)") == 1, 6, "recovery")
    closed = logs.when("circuit breaker CLOSED (was HALF_OPEN)")
    assert closed - opened >= 1.0  # the recovery timeout
    assert logs.count("circuit breaker HALF_OPEN") >= 1
    await wait_for(lambda: rec.first_after(closed, WS) is not None, 3, "WebSocket ticks again")
    await wait_for(lambda: feed.poller is not None and not feed.poller.symbols, 2, "polling stops")
    for symbol in ("BTCUSDT", "ETHUSDT", "BNBUSDT"):
        history = [
            (round(at - closed, 3), t.transport.value, t.seq)
            for at, t in rec.ticks
            if t.symbol == symbol and at > closed - 0.5
        ]
        assert rec.transports(symbol)[-3:] == ["websocket", "http", "websocket"], (
            symbol,
            history[-30:],
            feed.sequencer.per_symbol[symbol],
        )
        # no stall longer than the liveness bound for any symbol, outage included
        assert rec.max_gap(symbol, since=dropped_at - 1.0) < MAX_GAP, symbol
    assert feed.breaker_states() == {1: BreakerState.CLOSED}
    assert logs.count("circuit breaker OPEN after") == 1  # logged once, not per message
    handed_back = " ".join(
        line for line in logs.lines() if "BinanceAdapter: WebSocket streams" in line
    )
    assert all(handed_back.count(s) == 2 for s in ("BTCUSDT", "ETHUSDT", "BNBUSDT"))
    rec.assert_no_duplicate_or_out_of_order()


async def test_stall_without_pongs_is_detected(
    host: PluginHost, sim: Simulator, make_feed: Any, logs: Logs
) -> None:
    feed, rec = await make_feed(settings_for(host, sim))
    await wait_for(streaming(rec), 5, "streaming")
    sim.stall(0.9)
    stalled = time.time()
    await wait_for(lambda: logs.count("WebSocket error...") >= 1, 3, "the stall to be detected")
    detected = logs.when("WebSocket error...")
    assert detected - stalled <= 2 * 0.3 + 0.35, detected - stalled  # 2× heartbeat + checks
    assert set(feed.counters.failures) <= {"no_data", "pong_timeout"}
    await wait_for(lambda: rec.first_after(stalled + 1.0, WS) is not None, 6, "streaming again")
    rec.assert_no_duplicate_or_out_of_order()


async def test_silent_connection_with_pongs_is_a_failure(
    host: PluginHost, sim: Simulator, make_feed: Any, logs: Logs
) -> None:
    feed, rec = await make_feed(settings_for(host, sim))
    await wait_for(streaming(rec), 5, "streaming")
    sim.silence(0.8)
    await wait_for(lambda: feed.counters.failures.get("no_data", 0) >= 1, 3, "no_data")
    assert "no data for" in logs.lines()[-1] or logs.count("no_data: no data for") >= 1
    await wait_for(lambda: logs.count("connection established") >= 2, 5, "reconnect")
    rec.assert_no_duplicate_or_out_of_order()


async def test_malformed_frames_are_counted_and_never_kill_the_stream(
    host: PluginHost, sim: Simulator, make_feed: Any, logs: Logs
) -> None:
    feed, rec = await make_feed(settings_for(host, sim))
    await wait_for(streaming(rec), 5, "streaming")
    sim.malformed(6)
    await wait_for(lambda: feed.counters.malformed == 6, 3, "6 malformed frames counted")
    before = len(rec.ticks)
    await wait_for(lambda: len(rec.ticks) > before + 10, 3, "the stream going on")
    assert feed.counters.failures == {}
    assert logs.count("connection established") == 1
    assert logs.count("malformed frame #") == 3  # #1, #2, #4: visible, never a flood


async def test_flapping_connection_cannot_hammer_the_exchange(
    host: PluginHost, sim: Simulator, make_feed: Any, logs: Logs
) -> None:
    _feed, rec = await make_feed(settings_for(host, sim))
    await wait_for(streaming(rec), 5, "streaming")
    sim.flap(0.7)
    sim.drop_all()
    await wait_for(
        lambda: logs.count("circuit breaker OPEN after 3") == 1, 5, "the breaker to open"
    )
    delays = [line for line in logs.lines() if "Reconnecting... (attempt" in line]
    # every flap delivered data and dropped at once: the backoff never reset, it grew
    assert delays[:2] == [
        "BinanceAdapterWebSocket: Reconnecting... (attempt 1, delay 0.05s)",
        "BinanceAdapterWebSocket: Reconnecting... (attempt 2, delay 0.1s)",
    ]
    assert logs.count("healthy again") == 0
    await wait_for(lambda: logs.count("circuit breaker CLOSED (was HALF_OPEN)") == 1, 6, "recovery")
    rec.assert_no_duplicate_or_out_of_order()


async def test_rest_429_during_fallback_is_obeyed(
    host: PluginHost, sim: Simulator, make_feed: Any, logs: Logs
) -> None:
    feed, rec = await make_feed(settings_for(host, sim))
    await wait_for(streaming(rec), 5, "streaming")
    # the feed's first clock-offset round trips are REST requests too: let them pass first
    await wait_for(lambda: feed.metrics.clock_offset.total >= 4, 3, "the clock sync")
    sim.rest_errors(429, 1, retry_after=1.0)
    sim.refuse_upgrades(3.0)
    sim.drop_all()
    await wait_for(lambda: logs.count("rate limited (HTTP 429)") == 1, 5, "the 429")
    limited = logs.when("rate limited (HTTP 429)")
    polls_then = sim.stats.rest_by_path.get("/api/v3/ticker/bookTicker", 0)
    await wait_for(lambda: time.time() > limited + 0.8, 2, "most of Retry-After")
    assert sim.stats.rest_by_path.get("/api/v3/ticker/bookTicker", 0) == polls_then
    await wait_for(lambda: rec.first_after(limited + 1.0, HTTP) is not None, 3, "polling again")
    assert feed.poller is not None and feed.poller.rate_limited == 1
    rec.assert_no_duplicate_or_out_of_order()


async def test_rotation_before_the_lifetime_cut_loses_nothing(
    host: PluginHost, make_feed: Any, logs: Logs
) -> None:
    from foxtrot_stream_binance.simulator import SimulatorConfig

    config = SimulatorConfig(symbols=("BTCUSDT", "ETHUSDT"), rate=30.0, lifetime=1.5, seed=3)
    async with Simulator(config) as sim:
        # every BTCUSDT book update the simulator sends to anyone, by update id: what the feed
        # must deliver, checked exactly rather than by the time between arrivals (which a
        # loaded machine stretches without anything being lost)
        sent: list[int] = []
        fan_out = sim.server.fan_out

        def recording(subs: Any, stream: str, raw: bytes, raw_us: bytes | None = None) -> None:
            if stream == "btcusdt@bookTicker":
                sent.append(json.loads(raw)["u"])
            fan_out(subs, stream, raw, raw_us)

        sim.server.fan_out = recording  # type: ignore[method-assign]
        settings = settings_for(host, sim, binance__connection_lifetime=1.5)
        feed, rec = await make_feed(settings, ("BTCUSDT", "ETHUSDT"))
        await wait_for(lambda: feed.rotations >= 2, 6, "two rotations")
        assert feed.counters.failures == {}  # the exchange never had to cut us
        assert logs.count("rotating WebSocket connection (lifetime)") >= 2
        # a trade tick carries the book's last update id: the distinct ids are the book updates
        books = sorted({t.seq for _, t in rec.ticks if t.symbol == "BTCUSDT" and t.transport is WS})
        assert len(books) > 60  # 30 a second for more than 2 s
        # from the first update it delivered to the last, every one sent, across the rotations
        assert [u for u in sent if books[0] <= u <= books[-1]] == books
        assert rec.max_gap("BTCUSDT") < MAX_GAP
        proven_at = min(at for at, t in rec.ticks if t.transport is WS) + 0.5
        assert all(t.transport is WS for at, t in rec.ticks if at > proven_at)
        rec.assert_no_duplicate_or_out_of_order()
        await feed.stop()


async def test_server_shutdown_notice_rotates_without_a_gap(
    host: PluginHost, sim: Simulator, make_feed: Any, logs: Logs
) -> None:
    feed, rec = await make_feed(settings_for(host, sim))
    await wait_for(streaming(rec), 5, "streaming")
    sim.server_shutdown(grace=1.0)
    await wait_for(lambda: feed.rotations == 1, 3, "a rotation")
    assert logs.count("rotating WebSocket connection (server shutdown notice)") == 1
    await wait_for(lambda: len(sim.clients) == 1, 3, "the old connection closed")
    assert feed.counters.failures == {}
    rec.assert_no_duplicate_or_out_of_order()


async def test_max_attempts_exhaustion_then_reset(
    host: PluginHost, sim: Simulator, make_feed: Any, logs: Logs
) -> None:
    settings = settings_for(
        host,
        sim,
        websocket__reconnect__max_attempts=3,
        websocket__circuit_breaker__failure_threshold=5,
    )
    feed, rec = await make_feed(settings)
    await wait_for(streaming(rec), 5, "streaming")
    sim.refuse_upgrades(60.0)
    sim.drop_all()
    await wait_for(lambda: feed.breaker_states() == {1: BreakerState.EXHAUSTED}, 5, "exhaustion")
    assert logs.count("gave up after 3 reconnection attempts") == 1
    # the guide: max_attempts is the number of reconnection attempts: the drop, then 3 tries
    assert logs.count("Reconnecting... (attempt") == 3
    exhausted = time.time()
    await wait_for(lambda: rec.first_after(exhausted, HTTP) is not None, 2, "HTTP polling")
    attempts = sim.stats.connection_attempts
    await wait_for(lambda: time.time() > exhausted + 0.5, 1, "a while")
    assert sim.stats.connection_attempts == attempts  # stays on HTTP: no more attempts
    sim.clear()
    assert feed.reset() == 1
    reset_at = time.time()
    await wait_for(lambda: rec.first_after(reset_at, WS) is not None, 5, "WebSocket after reset")
    assert feed.breaker_states() == {1: BreakerState.CLOSED}
    rec.assert_no_duplicate_or_out_of_order()
