"""The four ways a symbol could go silently unserved, end to end against the simulator.

Each scripts the exchange's fault on the wire and checks the liveness contract as a consumer
sees it: no symbol goes longer than the bound without a tick (`MAX_GAP`: B at these timings
plus scheduling slack), and status says what is true.
"""

from __future__ import annotations

import time
from typing import Any

from foxtrot_stream.contract.model import TransportKind
from foxtrot_stream.contract.plugins import PluginHost
from foxtrot_stream_binance.simulator import Simulator

from e2e_helpers import MAX_GAP, SYMBOLS, Logs, proven, settings_for, wait_for

WS, HTTP = TransportKind.WEBSOCKET, TransportKind.HTTP


async def test_a_symbol_subscribed_during_the_handshake_is_streamed(
    host: PluginHost, sim: Simulator, make_feed: Any
) -> None:
    """Hosts subscribe one symbol per call: the second arrives while the first connection is
    still opening, and must be asked for on it once it is open."""
    sim.slow_handshake(3.0, delay=0.6)
    feed, rec = await make_feed(settings_for(host, sim), ("BTCUSDT",))
    await wait_for(lambda: sim.stats.held_handshakes >= 1, 3, "the handshake under way")
    assert await feed.subscribe(["ETHUSDT"]) == {}
    await wait_for(lambda: bool(rec.of("ETHUSDT", WS)), 4, "ETHUSDT over the WebSocket")
    await wait_for(proven(feed, ("BTCUSDT", "ETHUSDT")), 3, "both streamed")
    assert sim.stats.connection_attempts == 1
    for symbol in ("BTCUSDT", "ETHUSDT"):
        assert rec.max_gap(symbol) < MAX_GAP, symbol
    rec.assert_no_duplicate_or_out_of_order()


async def test_a_flapping_exchange_leaves_no_gap(
    host: PluginHost, sim: Simulator, make_feed: Any, logs: Logs
) -> None:
    """Each connection is accepted, streams 0.3 s and is dropped. The backoff grows (up to 3 s
    here) and the breaker's probes keep succeeding, but every symbol is polled whenever its
    WebSocket is not delivering, so no gap is longer than the bound."""
    settings = settings_for(
        host, sim, websocket__reconnect__base_delay=1.0, websocket__reconnect__max_delay=3.0
    )
    feed, rec = await make_feed(settings)
    await wait_for(proven(feed), 5, "streaming")
    started = time.time()
    sim.flap(10.0, up=0.3)
    sim.drop_all()
    await wait_for(lambda: time.time() > started + 10.0, 12, "the flapping to pass")
    assert logs.count("WebSocket error... dropped") >= 4
    for symbol in SYMBOLS:
        gap = rec.max_gap(symbol, since=started)
        assert gap < MAX_GAP, (symbol, gap)
    rec.assert_no_duplicate_or_out_of_order()


async def test_an_accepting_but_silent_exchange_leaves_no_gap(
    host: PluginHost, sim: Simulator, make_feed: Any
) -> None:
    """Connections open and pongs come back, but no data: REST shows the market moving, so the
    symbols are polled within half a heartbeat and the silent connections are failed."""
    feed, rec = await make_feed(settings_for(host, sim))
    await wait_for(proven(feed), 5, "streaming")
    started = time.time()
    sim.silence(3.0)
    await wait_for(lambda: feed.counters.failures.get("no_data", 0) >= 1, 3, "a silent failure")
    await wait_for(lambda: time.time() > started + 3.0, 4, "the silence to pass")
    await wait_for(proven(feed), 5, "streaming again")
    for symbol in SYMBOLS:
        gap = rec.max_gap(symbol, since=started)
        assert gap < MAX_GAP, (symbol, gap)
    rec.assert_no_duplicate_or_out_of_order()


async def test_an_exchange_id_reset_is_resynchronised(
    host: PluginHost, sim: Simulator, make_feed: Any, logs: Logs
) -> None:
    feed, rec = await make_feed(settings_for(host, sim))
    await wait_for(proven(feed), 5, "streaming")
    attempts = sim.stats.connection_attempts
    reset_at = time.time()
    sim.reset_ids("BTCUSDT")
    # older ids for a second, then ordering continues from the new ones, over the WebSocket
    await wait_for(lambda: feed.counters.resyncs >= 1, 4, "the resync")
    await wait_for(
        lambda: len([t for at, t in rec.ticks if at > reset_at + 1.5 and t.symbol == "BTCUSDT"
                     and t.transport is WS]) >= 5,
        4,
        "BTCUSDT streamed again",
    )  # fmt: skip
    assert logs.count("BTCUSDT: the exchange's ids went back") == 1
    assert feed.status()["symbols"]["BTCUSDT"]["resyncs"] >= 1
    assert rec.max_gap("BTCUSDT", since=reset_at) < MAX_GAP
    # one symbol's ids costs no connection: the other symbols streamed on undisturbed
    assert sim.stats.connection_attempts == attempts
    seqs = [t.seq for at, t in rec.ticks if at > reset_at + 1.5 and t.symbol == "BTCUSDT"]
    assert max(s for s in seqs if s is not None) < 10**6  # the new ids


async def test_a_forward_jumped_id_is_recovered_from_and_a_huge_one_is_malformed(
    host: PluginHost, sim: Simulator, make_feed: Any
) -> None:
    feed, rec = await make_feed(settings_for(host, sim))
    await wait_for(proven(feed), 5, "streaming")
    attempts = sim.stats.connection_attempts
    jumped_at = time.time()
    sim.jump_ids("ETHUSDT", 10**12)
    await wait_for(lambda: feed.counters.resyncs >= 1, 4, "the resync")
    await wait_for(
        lambda: any(at > jumped_at + 1.5 and t.symbol == "ETHUSDT" and t.transport is WS
                    for at, t in rec.ticks),
        4,
        "ETHUSDT streamed again",
    )  # fmt: skip
    assert rec.max_gap("ETHUSDT", since=jumped_at) < MAX_GAP
    assert sim.stats.connection_attempts == attempts
    # an id beyond a signed 64-bit integer is a malformed frame, never a tick
    before = feed.counters.malformed
    sim.jump_ids("BNBUSDT", 2**64)
    await wait_for(lambda: feed.counters.malformed > before, 3, "the frame counted as malformed")
    assert all(t.seq is None or t.seq < 2**63 for _, t in rec.ticks)
    arrived = len(rec.ticks)
    await wait_for(lambda: len(rec.ticks) > arrived + 20, 3, "the stream going on")
