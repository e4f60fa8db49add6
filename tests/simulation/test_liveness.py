"""The liveness contract, proved by simulation: the real feed against a fake exchange.

The feed, its shard supervisors, coverage, sequencer and the real HTTP poller run on a
virtual-time loop against `FakeExchange` (no sockets). Hypothesis generates fault schedules
(drop, refuse, accept-but-silent, flap, stall without pongs, one symbol silent, id reset or
jump, a refused subscription, live subscribe/unsubscribe, REST 429/418/5xx/slow) and after
every step checks:

* **the contract**: every update of a wanted symbol reached consumers (itself or a newer one)
  within B (`liveness_bound`), except while REST could not answer;
* no update delivered twice, none older after a newer one;
* **the status tells the truth**: `http` means polled; `websocket` means its connection is open
  and its updates arrive by WebSocket; a connection shown live is open;
* **no reconnect storm**: each reconnection waits at least the guide's backoff delay (or the
  breaker's recovery timeout), and at most `max_attempts` reconnections follow a healthy
  connection.

A failing schedule shrinks to the shortest list of steps that still fails.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
from collections import defaultdict
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from foxtrot_stream.config.settings import load
from foxtrot_stream.contract.model import Tick, TransportKind
from foxtrot_stream.contract.plugins import GROUP, Origin, PluginHost, discover_entry_points
from foxtrot_stream.policy.backoff import schedule
from foxtrot_stream.runtime.feed import Feed, liveness_bound, liveness_timings
from foxtrot_stream.testing.virtual_time import VirtualTimeLoop

from fake_exchange import REST_ROUND_TRIP, WS_LATENCY, FakeExchange, SimPlugin, version_of

HEARTBEAT = 1.0
POLL = 0.5
BASE_DELAY, MAX_DELAY, MAX_ATTEMPTS = 0.1, 1.0, 8
THRESHOLD, RECOVERY = 3, 2.0
SETTINGS = {
    "websocket.enabled": True,
    "websocket.heartbeat.interval": HEARTBEAT,
    "websocket.reconnect.base_delay": BASE_DELAY,
    "websocket.reconnect.max_delay": MAX_DELAY,
    "websocket.reconnect.max_attempts": MAX_ATTEMPTS,
    "websocket.circuit_breaker.failure_threshold": THRESHOLD,
    "websocket.circuit_breaker.recovery_timeout": RECOVERY,
    "http_fallback.interval": POLL,
}
B = liveness_bound(HEARTBEAT, POLL, REST_ROUND_TRIP)
QUIET, PROVE, GRACE, STEP = liveness_timings(HEARTBEAT)
#: How long status may still say `websocket` after the WebSocket stopped delivering a symbol:
#: noticed as quiet, polled, REST shows the change, judged after the grace (REST answering).
TRUTH = QUIET + 2 * STEP + POLL + REST_ROUND_TRIP + GRACE + 2 * WS_LATENCY + 1e-6
SYMBOLS = ("S0", "S1", "S2", "S3", "S4")
RATES = (0.3, 1.0, 4.0, 10.0)
#: How long after the last fault a live connection must have taken every symbol back from
#: polling: a resubscription of a lost symbol (once per recovery timeout), an id resync, the
#: symbol's next updates to prove it (its slowest pace), and the checks in between.
TAKE_BACK = RECOVERY + 1.0 + 3 / min(RATES) + PROVE + 4 * STEP + B
EXAMPLES = int(os.environ.get("FOXTROT_SIM_EXAMPLES", "1000"))


def build_host() -> tuple[PluginHost, SimPlugin]:
    """The real core and HTTP poller plugins (through their entry points), and the fake."""
    eps = [
        ep
        for ep in discover_entry_points(GROUP)
        if ep.value.split(":")[0].split(".")[0]
        in ("foxtrot_stream", "foxtrot_stream_http_fallback")
    ]
    host = PluginHost.discover(eps)
    plugin = SimPlugin()
    host.register(plugin, Origin("sim", "tests", "tests", "0"))
    return host, plugin


HOST, PLUGIN = build_host()
FEED_SETTINGS = load(text=json.dumps(SETTINGS), schema=HOST.schema()).settings

durations = st.floats(min_value=0.2, max_value=12.0)
then = st.floats(min_value=0.0, max_value=6.0)


class Liveness(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = VirtualTimeLoop()
        self.exchange: FakeExchange
        self.feed: Feed
        self.delivered: dict[str, list[tuple[float, int, TransportKind]]] = defaultdict(list)
        self.wanted: dict[str, float] = {}
        """symbol → since when it is subscribed."""
        self.checked: dict[str, int] = {}
        """symbol → the first version whose deadline is not yet checked."""
        self.shown_ws_since: dict[str, float] = {}

    # --- set-up and steps ------------------------------------------------------------------

    @initialize(
        rates=st.lists(st.sampled_from(RATES), min_size=5, max_size=5),
        first=st.integers(min_value=1, max_value=5),
    )
    def start(self, rates: list[float], first: int) -> None:
        self.exchange = FakeExchange(self.loop, dict(zip(SYMBOLS, rates, strict=True)))
        PLUGIN.exchange = self.exchange
        self.feed = Feed(HOST, FEED_SETTINGS, "sim", clock=self.loop.time, connect_budgets={})
        self.feed.add_consumer(self._record)
        self._run(self.feed.start(SYMBOLS[:first]))
        now = self.loop.time()
        for symbol in SYMBOLS[:first]:
            self._wanted(symbol, now)

    def _run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def _record(self, tick: Tick) -> None:
        self.delivered[tick.symbol].append((self.loop.time(), version_of(tick), tick.transport))

    def _wanted(self, symbol: str, since: float) -> None:
        self.wanted[symbol] = since
        self.delivered.pop(symbol, None)
        self.checked[symbol] = self.exchange.markets[symbol].version

    def _advance(self, seconds: float) -> None:
        self.loop.advance(seconds)
        self.loop.advance(1e-6)  # let everything due at that instant run

    @rule(seconds=st.floats(min_value=0.05, max_value=8.0))
    def wait(self, seconds: float) -> None:
        self._advance(seconds)

    @rule(after=then)
    def drop(self, after: float) -> None:
        self.exchange.drop_all()
        self._advance(after)

    @rule(seconds=durations, after=then)
    def refuse(self, seconds: float, after: float) -> None:
        self.exchange.refuse(seconds)
        self.exchange.drop_all()
        self._advance(after)

    @rule(seconds=durations, after=then)
    def accept_but_silent(self, seconds: float, after: float) -> None:
        self.exchange.silence(seconds)
        self._advance(after)

    @rule(seconds=durations, after=then)
    def stall_without_pongs(self, seconds: float, after: float) -> None:
        self.exchange.stall(seconds)
        self._advance(after)

    @rule(seconds=durations, up=st.floats(min_value=0.05, max_value=1.5), after=then)
    def flap(self, seconds: float, up: float, after: float) -> None:
        self.exchange.flap(seconds, up)
        self.exchange.drop_all()
        self._advance(after)

    @rule(symbol=st.sampled_from(SYMBOLS), seconds=durations, after=then)
    def one_symbol_silent(self, symbol: str, seconds: float, after: float) -> None:
        self.exchange.silence_symbol(symbol, seconds)
        self._advance(after)

    @rule(symbol=st.sampled_from(SYMBOLS), after=then)
    def ids_reset(self, symbol: str, after: float) -> None:
        self.exchange.reset_ids(symbol)
        self._advance(after)

    @rule(symbol=st.sampled_from(SYMBOLS), after=then)
    def ids_jump(self, symbol: str, after: float) -> None:
        self.exchange.jump_ids(symbol)
        self._advance(after)

    @rule(symbol=st.sampled_from(SYMBOLS), seconds=durations, after=then)
    def subscription_refused(self, symbol: str, seconds: float, after: float) -> None:
        self.exchange.refuse_subscriptions(symbol, seconds)
        self._advance(after)

    @rule(symbol=st.sampled_from(SYMBOLS), after=then)
    def subscribe(self, symbol: str, after: float) -> None:
        if symbol not in self.wanted:
            self._wanted(symbol, self.loop.time())
        self._run(self.feed.subscribe([symbol]))
        self._advance(after)

    @precondition(lambda self: len(self.wanted) > 1)
    @rule(data=st.data(), after=then)
    def unsubscribe(self, data: st.DataObject, after: float) -> None:
        symbol = data.draw(st.sampled_from(sorted(self.wanted)))
        self._check_contract(until=self.loop.time(), only=symbol)
        del self.wanted[symbol]
        self._run(self.feed.unsubscribe([symbol]))
        self._advance(after)

    @rule(
        status=st.sampled_from([429, 418, 500, 503]),
        count=st.integers(min_value=1, max_value=3),
        retry_after=st.floats(min_value=0.5, max_value=5.0),
        after=then,
    )
    def rest_error(self, status: int, count: int, retry_after: float, after: float) -> None:
        self.exchange.rest_error(status, count, retry_after)
        self._advance(after)

    @rule(seconds=durations, delay=st.floats(min_value=0.1, max_value=3.0), after=then)
    def rest_slow(self, seconds: float, delay: float, after: float) -> None:
        self.exchange.rest_slow(seconds, delay)
        self._advance(after)

    def teardown(self) -> None:
        if hasattr(self, "feed"):
            self._run(self.feed.stop())
        self.loop.close()

    # --- what must hold after every step ---------------------------------------------------

    @invariant()
    def contract(self) -> None:
        if hasattr(self, "feed"):
            self._check_contract(until=self.loop.time())

    def _deadline(self, at: float, within: float = B) -> float:
        """When something due `within` seconds after `at` must have happened, REST answering:
        if REST could not answer in that time, `within` after it could again."""
        deadline = at + within
        for start, end in sorted(self.exchange.rest_bad):
            if start < deadline and end > at:
                deadline = max(deadline, end + within)
        return deadline

    def _check_contract(self, until: float, only: str | None = None) -> None:
        for symbol, since in self.wanted.items():
            if only is not None and symbol != only:
                continue
            market = self.exchange.markets[symbol]
            deliveries = self.delivered.get(symbol, [])
            version = self.checked[symbol]
            while version <= market.version:
                at = max(market.times[version], since)
                deadline = self._deadline(at)
                if deadline > until:
                    break
                reached = next((t for t, v, _ in deliveries if v >= version), None)
                assert reached is not None and reached <= deadline, (
                    f"{symbol}: update {version} of t={at:.3f} reached consumers "
                    f"{'never' if reached is None else f'at t={reached:.3f}'} "
                    f"(B={B:.3f}, deadline t={deadline:.3f}); "
                    f"status {self.feed.status()['symbols'].get(symbol)}"
                )
                version += 1
            self.checked[symbol] = version

    @invariant()
    def no_duplicate_and_nothing_older_after_newer(self) -> None:
        for symbol, deliveries in self.delivered.items():
            versions = [v for _, v, _ in deliveries]
            assert all(a < b for a, b in itertools.pairwise(versions)), (
                symbol,
                deliveries[-10:],
            )

    @invariant()
    def status_tells_the_truth(self) -> None:
        if not hasattr(self, "feed"):
            return
        feed, now = self.feed, self.loop.time()
        record = feed.record()  # what status is built from
        polled = feed.poller.symbols if feed.poller is not None else frozenset()
        open_by_shard = {
            a.shard: a for a in self.exchange.attempts if a.opened is not None and a.ended is None
        }
        for shard in record.shards:
            assert shard.live == (shard.id in open_by_shard), shard
        for symbol in self.wanted:
            shown = record.symbols[symbol]
            if shown.transport == "http":
                assert symbol in polled, (symbol, shown)
                self.shown_ws_since.pop(symbol, None)
                continue
            assert shown.transport == "websocket", shown
            assert shown.connection in open_by_shard, shown
            since = self.shown_ws_since.setdefault(symbol, now)
            # its updates arrive by WebSocket: any it missed is noticed within TRUTH
            market = self.exchange.markets[symbol]
            by_ws = max(
                (
                    v
                    for _, v, kind in self.delivered.get(symbol, [])
                    if kind is TransportKind.WEBSOCKET
                ),
                default=-1,
            )
            for version in range(market.version, 0, -1):
                at = market.times[version]
                if at <= since:
                    break
                if self._deadline(at, TRUTH) <= now:  # REST is how a quiet one is verified
                    assert by_ws >= version, (
                        f"{symbol} shown as websocket since t={since:.3f}, but its update "
                        f"{version} of t={at:.3f} never came by WebSocket: {shown}"
                    )
                    break

    @invariant()
    def websocket_takes_symbols_back(self) -> None:
        """Polling is the bridge, not the destination: once the exchange has behaved for a
        while, a symbol on a healthy connection is streamed again (lost subscriptions renewed,
        reset ids resynchronised)."""
        if not hasattr(self, "feed"):
            return
        now = self.loop.time()
        ex = self.exchange
        for symbol, since in self.wanted.items():
            calm = max(ex.last_fault, ex.symbol_fault.get(symbol, -math.inf), since)
            shard = self.feed._shard_of.get(symbol)
            if shard is None or shard.opened_at is None or shard.breaker.state.value != "CLOSED":
                continue
            if now - max(calm, shard.opened_at) < TAKE_BACK:
                continue
            shown = self.feed.describe_symbol(symbol)[0]
            assert shown == "websocket", (
                f"{symbol}: no fault for {now - calm:.1f}s, its connection open for "
                f"{now - shard.opened_at:.1f}s, yet it is on {shown}: "
                f"{self.feed.status()['symbols'][symbol]}"
            )

    @invariant()
    def only_a_silent_connection_is_failed_for_silence(self) -> None:
        """A connection is failed for `no_data` only if it really delivered nothing for
        `quiet_after`: one lost symbol on a busy connection is resubscribed, not a reason to
        drop the others."""
        if not hasattr(self, "exchange"):
            return
        for attempt in self.exchange.attempts:
            if attempt.failure != "no_data" or attempt.last_frame is None:
                continue
            assert attempt.ended is not None
            assert attempt.ended - attempt.last_frame >= QUIET - 1e-6, attempt

    @invariant()
    def no_reconnect_storm(self) -> None:
        if not hasattr(self, "exchange"):
            return
        assert self.exchange.requests_while_banned == 0
        polls = self.exchange.poll_times
        # one poll per interval at most, however often symbols come and go
        assert all(b - a >= POLL - 1e-6 for a, b in itertools.pairwise(polls))
        by_shard: dict[int, list[Any]] = defaultdict(list)
        for attempt in self.exchange.attempts:
            by_shard[attempt.shard].append(attempt)
        for attempts in by_shard.values():
            failed_run = 0
            for prev, nxt in itertools.pairwise(attempts):
                assert prev.ended is not None
                healthy = (
                    prev.opened is not None
                    and prev.delivered is not None
                    and prev.ended - prev.opened >= PROVE
                )
                failed_run = 1 if healthy else failed_run + 1
                # the backoff delay of this reconnection, or the breaker's recovery timeout
                # when the breaker opened (the shorter of the two bounds the wait from below)
                least = min(schedule(BASE_DELAY, MAX_DELAY, min(failed_run, 60)), RECOVERY)
                if healthy and prev.ended - prev.opened < PROVE + HEARTBEAT:
                    least = min(least, BASE_DELAY)  # healthy or not: the gate's step decides
                assert nxt.started - prev.ended >= least - 1e-6, (prev, nxt, failed_run)
                assert failed_run <= MAX_ATTEMPTS + 1, (attempts[-12:], failed_run)


Liveness.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestLiveness = Liveness.TestCase


def test_the_bound_at_the_guides_defaults_is_seconds() -> None:
    """B at the guide's defaults (heartbeat 30 s, polling every 1 s), with a 100 ms REST answer."""
    assert math.isclose(liveness_bound(30.0, 1.0, 0.1), 15.0 + 1.0 + 1.0 + 0.1)


def test_virtual_time_takes_no_real_time() -> None:
    """Nothing in the loop above is real time: a sanity check of the tool itself."""
    loop = VirtualTimeLoop()
    try:
        start = loop.time()
        woke: list[float] = []

        async def sleeper() -> None:
            await asyncio.sleep(3000.0)
            woke.append(loop.time())

        loop.create_task(sleeper())
        loop.advance(3600.0)
        assert woke == [start + 3000.0] and loop.time() == start + 3600.0
    finally:
        loop.close()
