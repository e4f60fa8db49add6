"""The feed supervisor: one per adapter. Routing, reconnection, failover, recovery, sequencing.

Symbols routed to WebSocket are split into shards that respect the exchange's per-connection
stream limit; each shard has one connection at a time (two during a rotation), its own backoff
and its own circuit breaker. Symbols routed to HTTP, and a shard's symbols while its breaker is
open, are served by one poller. Everything reaches consumers through the `Sequencer`, so
whichever transport delivered a quote, consumers see no duplicate and nothing older after newer.

Logs follow the guide: `<Display>` for connection state, `<Display>WebSocket` for reconnects,
`<Display>Error` for failures; each state change is logged once, nothing is logged per tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from typing import Any

import aiohttp
import attrs

from foxtrot_stream.backoff import Backoff
from foxtrot_stream.breaker import BreakerState, CircuitBreaker
from foxtrot_stream.buffer import ConflatingBuffer, SlowConsumer
from foxtrot_stream.metrics import FeedMetrics
from foxtrot_stream.model import TransportKind
from foxtrot_stream.plugins import PluginHost
from foxtrot_stream.records import (
    Connection,
    ConnectionEvents,
    ExchangeAdapter,
    Failure,
    FeedContext,
    FrameHandler,
    Poller,
    PollError,
    ServerClock,
    StateChange,
    TickSink,
    TransportFailure,
)
from foxtrot_stream.routing import why_http
from foxtrot_stream.sequencer import Consumer, Sequencer
from foxtrot_stream.settings import INSECURE_HINT, Settings, insecure_urls
from foxtrot_stream.staleness import StalenessTracker, Verdict
from foxtrot_stream.status import AdapterStatus, adapter_status, adapter_status_async, to_plain
from foxtrot_stream.websocket import BUDGETS

#: A rotation starts this far into the exchange's connection lifetime.
ROTATE_AT = 0.9
#: Seconds between two round trips to the exchange's time endpoint (the first four are quick).
CLOCK_SYNC_EVERY = 60.0


@attrs.define
class FeedCounters:
    malformed: int = 0
    failures: dict[str, int] = attrs.Factory(dict)
    reconnects: int = 0
    consumer_errors: int = 0
    plugin_errors: int = 0
    rotations: int = 0
    rejected: int = 0
    stale_resubscribes: int = 0
    control_errors: int = 0
    """(Un)subscribe messages that could not be sent on a live connection."""
    stale_polled: int = 0


class Shard:
    """One connection's worth of symbols with its own backoff and breaker."""

    def __init__(self, shard_id: int, backoff: Backoff, breaker: CircuitBreaker) -> None:
        self.id = shard_id
        self.symbols: list[str] = []
        self.backoff = backoff
        self.breaker = breaker
        self.conn: Connection | None = None
        self.task: asyncio.Task[None] | None = None
        self.wake = asyncio.Event()
        self.live = False
        """True while a connection of this shard is delivering data."""
        self.successor: tuple[Connection, asyncio.Task[None], _Listener] | None = None
        """Set by a rotation: the connection that takes over when the current one closes."""
        self.opened_at: float | None = None
        """When the current connection opened (feed clock); None while down."""
        self.connects = 0
        self.reconnects = 0
        self.failures: dict[str, int] = {}


class _Listener:
    """Receives one connection's reports (ConnectionListener) and passes them to the feed."""

    def __init__(self, feed: Feed, shard: Shard, probe: bool) -> None:
        self.feed = feed
        self.shard = shard
        self.probe = probe
        self.data = asyncio.Event()
        self.opened_at: float | None = None
        self.shutdown = asyncio.Event()

    def opened(self) -> None:
        self.opened_at = self.feed.clock()
        self.feed.log.info("WebSocket connection established")
        self.feed._opened(self.shard, self.opened_at)

    def first_data(self) -> None:
        self.data.set()
        self.feed._first_data(self.shard, self)

    def malformed(self, reason: str, frame: str | bytes) -> None:
        self.feed._malformed(reason, frame)

    def server_shutdown(self) -> None:
        self.shutdown.set()

    def rejected(self, streams: Sequence[str], error: str) -> None:
        self.feed._rejected(self.shard, streams, error)


class Feed:
    """Streams one adapter's symbols to consumers; see the module docstring."""

    def __init__(
        self,
        host: PluginHost,
        settings: Settings,
        adapter: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        connect_budgets: dict[str, Any] | None = None,
    ) -> None:
        spec = host.adapters.get(adapter)
        if spec is None:
            raise LookupError(
                f"no adapter named {adapter!r} is installed "
                f"(installed: {', '.join(sorted(host.adapters)) or 'none'})"
            )
        policy = host.policies.get(settings.websocket.policy)
        if policy is None:
            raise LookupError(
                f"websocket.policy = {settings.websocket.policy!r}: no such policy "
                f"(installed: {', '.join(sorted(host.policies))})"
            )
        self.host = host
        self.settings = settings
        self.connect_budgets = BUDGETS if connect_budgets is None else connect_budgets
        self.name = adapter
        self.display = spec.display_name
        plugin_settings = settings.plugins.get(adapter) if spec.settings_cls else None
        self.adapter: ExchangeAdapter = spec.factory(plugin_settings)
        self.policy = policy
        self.clock = clock
        self.log = logging.getLogger(self.display)
        self.ws_log = logging.getLogger(f"{self.display}WebSocket")
        self.error_log = logging.getLogger(f"{self.display}Error")
        self.consumers: list[Consumer] = []
        self.buffers: list[ConflatingBuffer] = []
        self.sequencer = Sequencer(self.consumers, consumer_failed=self._consumer_raised)
        self.metrics = FeedMetrics(self.sequencer.delivered, clock)
        self.sequencer.latency = self.metrics.record  # a sample per tick with an exchange time
        self.counters = FeedCounters()
        self.changes: deque[StateChange] = deque(maxlen=100)
        """The latest state changes, oldest first (also sent to `on_state_change`)."""
        self.state_listeners: list[Callable[[StateChange], None]] = []
        self._transport_seen: dict[str, str] = {}
        self.shards: list[Shard] = []
        self.poller: Poller | None = None
        self.symbols: dict[str, str | None] = {}
        """Subscribed symbol → why it is on HTTP by the settings (None: routed to WebSocket)."""
        self.refused: dict[str, str] = {}
        self._shard_ids = itertools.count(1)
        self._request_ids = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._context: FeedContext | None = None
        self._stopping = False
        self._consumer_failed: set[int] = set()
        interval = settings.websocket.heartbeat.interval
        self.staleness = StalenessTracker(floor=2 * interval)
        self.stale_polled: set[str] = set()
        """Symbols served by HTTP alone because they went stale on a live connection."""

    # --- wiring ------------------------------------------------------------------------------

    def add_consumer(self, consumer: Consumer) -> None:
        """A fast consumer, called on the feed's loop for every tick: it must not block."""
        self.consumers.append(consumer)

    def add_buffered_consumer(self, consumer: SlowConsumer) -> ConflatingBuffer:
        """A consumer that may be slower than the market (sync or async): it runs on its own
        task behind a `ConflatingBuffer` (newest quote per symbol; superseded ones counted as
        dropped). Call after `start()`."""
        buffer = ConflatingBuffer(consumer)
        self.buffers.append(buffer)
        self.consumers.append(buffer.put)
        self._spawn(buffer.run(), f"{self.name}-consumer-{len(self.buffers)}")
        return buffer

    def _consumer_raised(self, consumer: Consumer, exc: Exception) -> None:
        self.counters.consumer_errors += 1
        if id(consumer) not in self._consumer_failed:  # once per consumer
            self._consumer_failed.add(id(consumer))
            self.error_log.error("consumer %r raised; it keeps receiving", consumer, exc_info=exc)

    @property
    def context(self) -> FeedContext:
        if self._context is None:
            raise RuntimeError("the feed is not started")
        return self._context

    def _handler_for(self, sink: TickSink, events: ConnectionEvents) -> FrameHandler:
        return self.host.on_message(self.adapter, sink, events)

    def _messages_for(
        self, method: str, streams: Sequence[str], next_id: Callable[[], int]
    ) -> list[str]:
        return self.host.subscribe(self.adapter, method, streams, next_id)

    async def start(self, symbols: Iterable[str] = ()) -> None:
        if self._session is not None:
            raise RuntimeError("the feed is already started")
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, connect=10.0, sock_connect=10.0)
        )
        self._context = FeedContext(
            adapter=self.adapter,
            settings=self.settings,
            session=self._session,
            sink=self.sequencer.streamed,
            clock=self.clock,
            poll_sink=self.sequencer.polled,
            handler_for=self._handler_for,
            messages_for=self._messages_for,
            display_name=self.display,
            connect_budgets=self.connect_budgets,
            plugin_settings=self.settings.plugins,
        )
        for prefix, obj in self.settings.plugins.items():
            for field, url in insecure_urls(obj):
                self.error_log.warning(
                    "%s.%s = %s is not encrypted: %s", prefix, field, url, INSECURE_HINT
                )
        self._spawn(self._watch_staleness(), f"{self.name}-staleness")
        self._spawn(self._sample_metrics(), f"{self.name}-metrics")
        if isinstance(self.adapter, ServerClock):
            self._spawn(self._sync_clock(self.adapter), f"{self.name}-clock")
        await self.subscribe(symbols)

    # --- subscriptions -------------------------------------------------------------------------

    async def subscribe(self, symbols: Iterable[str]) -> dict[str, str]:
        """Add symbols; returns the ones refused (symbol → why), the others go on."""
        wanted = [s for s in dict.fromkeys(x.upper() for x in symbols) if s not in self.symbols]
        if not wanted:
            return {}
        try:
            check = await self.adapter.validate_symbols(self.context.session, wanted)
            valid, refused = list(check.valid), dict(check.invalid)
        except PollError as exc:
            self.error_log.warning(
                "cannot check symbols against the exchange (%s); using them", exc
            )
            valid, refused = wanted, {}
        for symbol, why in refused.items():
            self.error_log.error("%s refused: %s", symbol, why)
        self.refused.update(refused)
        to_ws: list[str] = []
        by_reason: dict[str, list[str]] = {}
        for symbol in valid:
            reason = why_http(self.settings, self.name, symbol)
            self.symbols[symbol] = reason
            if reason is None:
                to_ws.append(symbol)
            else:
                by_reason.setdefault(reason, []).append(symbol)
        for reason, group in by_reason.items():
            self.log.info("HTTP polling for %s (%s)", ", ".join(group), reason)
            self._poll(group, reason)
        if to_ws:
            await self._place(to_ws)
        return refused

    async def unsubscribe(self, symbols: Iterable[str]) -> None:
        gone = [s.upper() for s in symbols if s.upper() in self.symbols]
        for symbol in gone:
            del self.symbols[symbol]
            self.sequencer.forget(symbol)
            self.staleness.forget(symbol)
            self.stale_polled.discard(symbol)
            self.metrics.forget(symbol)
        if self.poller is not None:
            self.poller.remove(gone)
        for shard in self.shards:
            leaving = [s for s in shard.symbols if s in gone]
            if not leaving:
                continue
            shard.symbols = [s for s in shard.symbols if s not in gone]
            if not shard.symbols:
                await self._retire(shard)
            elif shard.conn is not None:
                await self._control(shard.conn.unsubscribe, "unsubscribe", leaving)
        self.shards = [s for s in self.shards if s.symbols]
        self._note_transports()

    def _capacity(self) -> int:
        per_symbol = max(1, len(self.adapter.streams_for("X")))
        return max(1, self.adapter.limits.max_streams // per_symbol)

    async def _place(self, symbols: list[str]) -> None:
        capacity = self._capacity()
        pending = list(symbols)
        for shard in self.shards:
            room = capacity - len(shard.symbols)
            if room <= 0 or not pending:
                continue
            added, pending = pending[:room], pending[room:]
            shard.symbols.extend(added)
            if shard.breaker.state is not BreakerState.CLOSED or not shard.live:
                self._poll(added, "its connection is not streaming yet")
            if shard.conn is not None:
                await self._control(shard.conn.subscribe, "subscribe", added)
        while pending:
            group, pending = pending[:capacity], pending[capacity:]
            shard = Shard(
                next(self._shard_ids),
                self.policy.make_backoff(self.settings),
                self.policy.make_breaker(self.settings, self.clock),
            )
            shard.symbols = group
            self.shards.append(shard)
            shard.task = self._spawn(self._supervise(shard), f"{self.name}-shard-{shard.id}")

    async def _retire(self, shard: Shard) -> None:
        if shard.task is not None:
            shard.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await shard.task

    # --- HTTP fallback -----------------------------------------------------------------------

    def _poll(self, symbols: Sequence[str], reason: str) -> None:
        if not symbols:
            return
        if self.poller is None:
            try:
                self.poller = self.host.fallback(self.context, symbols, reason)
            except Exception:
                self.counters.plugin_errors += 1
                self.error_log.exception("the fallback plugin raised; %s unserved", symbols)
                return
            if self.poller is None:
                self.error_log.error(
                    "no HTTP fallback plugin can poll %s: %s stay unserved", self.name, symbols
                )
                return
            self._spawn(self.poller.run(), f"{self.name}-poller")
        self.poller.add(symbols)
        self._note_transports(reason)

    def _unpoll(self, symbols: Sequence[str]) -> None:
        if self.poller is not None:
            self.poller.remove(symbols)
            self._note_transports("WebSocket delivers again")

    def transport_of(self, symbol: str) -> TransportKind | None:
        """The transport serving `symbol` right now (HTTP while both overlap); None while its
        connection is not streaming yet, or if it is not subscribed. For many symbols, call
        `transports()` once."""
        return self.transports().get(symbol)

    def transports(self) -> dict[str, TransportKind | None]:
        """The transport serving each subscribed symbol, in one pass: the poller's symbol set is
        read (copied) once and each shard walked once. A symbol polled over HTTP is on HTTP
        even while its connection also streams (the two overlap during a hand-over)."""
        polled = self.poller.symbols if self.poller is not None else frozenset()
        live = {symbol: shard.live for shard in self.shards for symbol in shard.symbols}
        out: dict[str, TransportKind | None] = {}
        for symbol in self.symbols:
            if symbol in polled or symbol not in live:
                out[symbol] = TransportKind.HTTP
            else:
                out[symbol] = TransportKind.WEBSOCKET if live[symbol] else None
        return out

    # --- the shard supervisor ----------------------------------------------------------------

    async def _supervise(self, shard: Shard) -> None:
        breaker = shard.breaker
        while not self._stopping and shard.symbols:
            self._log_transition(breaker.poll(), shard)
            state = breaker.state
            if state is BreakerState.EXHAUSTED:
                await self._wait(shard, None)
                continue
            if state is BreakerState.OPEN:
                remaining = breaker.remaining_open()
                if remaining > 0:
                    await self._wait(shard, remaining)
                    continue
            probe = False
            if breaker.state is BreakerState.HALF_OPEN:
                if not breaker.try_acquire_probe():
                    await self._wait(shard, self.settings.websocket.heartbeat.interval)
                    continue
                probe = True
                self.ws_log.info(
                    "Reconnecting... (probe, attempt %d, after %gs open)",
                    shard.backoff.attempts + 1,
                    self.settings.websocket.circuit_breaker.recovery_timeout,
                )
            failure = await self._connect_and_run(shard, probe)
            if self._stopping:
                return
            if failure is not None:
                await self._failed(shard, failure, probe)

    async def _connect_and_run(self, shard: Shard, probe: bool) -> TransportFailure | None:
        listener = _Listener(self, shard, probe)
        try:
            conn = self.host.connect(self.context, "websocket", list(shard.symbols), listener)
        except Exception as exc:
            self.counters.plugin_errors += 1
            return TransportFailure("connect_failed", f"connect hook raised {exc!r}")
        if conn is None:
            return TransportFailure("connect_failed", "no transport plugin answers 'websocket'")
        shard.conn = conn
        run = self._spawn(conn.run(), f"{self.name}-conn-{shard.id}")
        while True:
            health = self._spawn(self._health(shard, listener), f"{self.name}-health-{shard.id}")
            rotation = self._spawn(
                self._rotation(shard, listener), f"{self.name}-rotate-{shard.id}"
            )
            failure: TransportFailure | None = None
            try:
                await asyncio.shield(run)
            except TransportFailure as exc:
                failure = exc
            except asyncio.CancelledError:
                run.cancel()
                with contextlib.suppress(BaseException):  # cancelled: whatever close says, go
                    await conn.close()
                raise
            except Exception as exc:
                failure = TransportFailure("dropped", f"{type(exc).__name__}: {exc}")
            finally:
                health.cancel()
                rotation.cancel()
            successor = shard.successor
            if successor is not None and successor[0] is not conn:
                # a rotation replaced this connection: supervise the new one from here on
                conn, run, listener = successor
                shard.successor = None
                continue
            shard.conn = None
            shard.live = False
            if shard.opened_at is not None:  # it was up (a failed connect never was)
                shard.opened_at = None
                self._changed(
                    "connection",
                    f"connection {shard.id}",
                    "up",
                    "down",
                    failure.kind if failure is not None else "closed",
                )
            self._note_transports()
            with contextlib.suppress(Exception):  # it already failed: closing is best effort
                await conn.close()
            return failure

    async def _health(self, shard: Shard, listener: _Listener) -> None:
        """A connection is healthy after valid data and one heartbeat interval up (DESIGN §5)."""
        await listener.data.wait()
        up_since = listener.opened_at if listener.opened_at is not None else self.clock()
        hold = up_since + self.settings.websocket.heartbeat.interval - self.clock()
        await asyncio.sleep(max(0.0, hold))
        if shard.breaker.state is BreakerState.CLOSED:
            transition = shard.breaker.record_success()
            self._log_transition(transition, shard)
        if shard.backoff.attempts:
            self.log.info("WebSocket healthy again; reconnection backoff reset")
        shard.backoff.reset()

    def _first_data(self, shard: Shard, listener: _Listener) -> None:
        shard.live = True
        breaker = shard.breaker
        if listener.probe and breaker.state is BreakerState.HALF_OPEN:
            transition = breaker.record_success()
            self._log_transition(transition, shard)
        self._note_transports("WebSocket delivers")
        polled = [
            s
            for s in shard.symbols
            if self.poller is not None and s in self.poller.symbols and s not in self.stale_polled
        ]
        if polled and breaker.state is BreakerState.CLOSED:
            self.log.info(
                "WebSocket recovered: %d symbol(s) return from HTTP polling (%s)",
                len(polled),
                ", ".join(polled),
            )
            self._spawn(self._hand_over(shard, polled), f"{self.name}-handover-{shard.id}")

    async def _hand_over(self, shard: Shard, symbols: list[str]) -> None:
        """Make-before-break, per symbol: polling for a symbol stops once the WebSocket has
        delivered it; a symbol that stays quiet is handed over after a grace period."""
        counts = self.sequencer.streamed_count
        before = {s: counts(s)[0] for s in symbols}
        pending = set(symbols)
        grace = max(2 * self.settings.websocket.heartbeat.interval, 1.0)
        deadline = self.clock() + grace
        while pending and shard.live and shard.breaker.state is BreakerState.CLOSED:
            done = [s for s in pending if counts(s)[0] > before[s]]
            if done:
                self._unpoll(done)
                pending.difference_update(done)
            if self.clock() >= deadline:
                break
            await asyncio.sleep(0.02)
        if pending and shard.live and shard.breaker.state is BreakerState.CLOSED:
            self._unpoll(sorted(pending))

    async def _failed(self, shard: Shard, failure: TransportFailure, probe: bool) -> None:
        shard.live = False
        kind = failure.kind
        self.counters.failures[kind] = self.counters.failures.get(kind, 0) + 1
        shard.failures[kind] = shard.failures.get(kind, 0) + 1
        self.metrics.error(kind)
        self.error_log.error("WebSocket error... %s: %s", kind, failure.detail)
        for exc in self.host.on_failure(
            Failure(self.name, "websocket", kind, failure.detail, tuple(shard.symbols))
        ):
            self.counters.plugin_errors += 1
            self.error_log.error("an on_failure plugin raised %r", exc)
        before = shard.breaker.state
        transition = shard.breaker.record_failure()
        delay = shard.backoff.next_delay()
        if delay is None and shard.breaker.state is not BreakerState.EXHAUSTED:
            transition = shard.breaker.exhaust() or transition
        self._log_transition(transition, shard)
        after = shard.breaker.state
        if after is not BreakerState.CLOSED and before is BreakerState.CLOSED:
            self._poll(shard.symbols, "circuit breaker open")
        if after is BreakerState.EXHAUSTED:
            self._poll(shard.symbols, "WebSocket attempts exhausted")
            return
        if after is BreakerState.OPEN:
            return  # the supervisor waits for the recovery timeout, then probes
        assert delay is not None
        self.counters.reconnects += 1
        shard.reconnects += 1
        self.ws_log.info("Reconnecting... (attempt %d, delay %gs)", shard.backoff.attempts, delay)
        await self._wait(shard, delay)

    def _log_transition(self, transition: Any, shard: Shard) -> None:
        if transition is None:
            return
        old, new = transition.old, transition.new
        self._changed("breaker", f"connection {shard.id}", old.value, new.value, transition.reason)
        if new is BreakerState.OPEN and old is BreakerState.HALF_OPEN:
            self.error_log.warning(
                "circuit breaker OPEN again: the probe failed; next probe in %gs",
                self.settings.websocket.circuit_breaker.recovery_timeout,
            )
        elif new is BreakerState.OPEN:
            self.error_log.warning(
                "circuit breaker OPEN after %d consecutive failures: falling back to HTTP "
                "polling; WebSocket probe in %gs",
                self.settings.websocket.circuit_breaker.failure_threshold,
                self.settings.websocket.circuit_breaker.recovery_timeout,
            )
        elif new is BreakerState.HALF_OPEN:
            self.log.info("circuit breaker HALF_OPEN: probing the WebSocket")
        elif new is BreakerState.CLOSED and old is not BreakerState.CLOSED:
            self.log.info("circuit breaker CLOSED (was %s)", old.value)
        elif new is BreakerState.EXHAUSTED:
            self.error_log.error(
                "WebSocket gave up after %d consecutive failed attempts: staying on HTTP "
                "polling until reset (Feed.reset() or `foxtrot-stream` reset control)",
                self.settings.websocket.reconnect.max_attempts,
            )

    async def _wait(self, shard: Shard, seconds: float | None) -> None:
        """Sleep, cut short by `reset()` or `stop()`."""
        shard.wake.clear()
        try:
            async with asyncio.timeout(seconds):
                await shard.wake.wait()
        except TimeoutError:
            pass  # the sleep ran its full length: the usual way out

    # --- rotation ------------------------------------------------------------------------------

    async def _rotation(self, shard: Shard, listener: _Listener) -> None:
        """Replace the connection before the exchange's lifetime cut or on its shutdown notice:
        open the new one, wait for its first data, then close the old one."""
        lifetime = self.adapter.limits.max_lifetime * ROTATE_AT
        await listener.data.wait()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(lifetime):
                await listener.shutdown.wait()
        reason = "server shutdown notice" if listener.shutdown.is_set() else "lifetime"
        await self._rotate(shard, reason)

    async def _rotate(self, shard: Shard, reason: str) -> None:
        old = shard.conn
        if old is None:
            return
        self.log.info("rotating WebSocket connection (%s)", reason)
        listener = _Listener(self, shard, probe=False)
        conn = self.host.connect(self.context, "websocket", list(shard.symbols), listener)
        if conn is None:
            return
        run = self._spawn(conn.run(), f"{self.name}-conn-{shard.id}")
        waiter = asyncio.ensure_future(listener.data.wait())
        await asyncio.wait(
            {run, waiter},
            timeout=4 * self.settings.websocket.heartbeat.interval + 10,
            return_when=asyncio.FIRST_COMPLETED,
        )
        waiter.cancel()
        if not listener.data.is_set() or shard.conn is not old:
            # the new connection failed, or the old one is already gone: keep to the loop
            await conn.close()
            run.cancel()
            with contextlib.suppress(BaseException):  # the run we just cancelled, or its failure
                await run
            if not listener.data.is_set():
                self.error_log.warning("rotation failed: the new connection sent no data")
            return
        self.counters.rotations += 1
        shard.successor = (conn, run, listener)
        shard.conn = conn
        await old.close()

    # --- per-symbol staleness ------------------------------------------------------------------

    async def _watch_staleness(self) -> None:
        """Check each streamed symbol's age against its own pace (see `staleness`)."""
        step = self.settings.websocket.heartbeat.interval / 2
        tracker = self.staleness
        while True:
            await asyncio.sleep(step)
            now = self.clock()
            for shard in self.shards:
                healthy = shard.live and shard.breaker.state is BreakerState.CLOSED
                for symbol in shard.symbols:
                    if not healthy:
                        tracker.restart(symbol, now)
                        continue
                    count, _ = self.sequencer.streamed_count(symbol)
                    verdict = tracker.observe(symbol, count, now)
                    if verdict is Verdict.FRESH:
                        continue
                    self._stale_verdict(shard, symbol, verdict, now)

    def _stale_verdict(self, shard: Shard, symbol: str, verdict: Verdict, now: float) -> None:
        tracker = self.staleness
        if verdict is Verdict.STALE:
            self.counters.stale_resubscribes += 1
            gap = tracker.mean_gap(symbol) or 0.0
            self.error_log.warning(
                "%s: no update for %.1fs on a live connection (usually every %.2fs): resubscribing",
                symbol,
                tracker.age(symbol, now),
                gap,
            )
            conn = shard.conn
            if conn is not None:
                self._spawn(self._resubscribe(conn, symbol), f"{self.name}-resubscribe")
        elif verdict is Verdict.STILL_STALE:
            self.counters.stale_polled += 1
            self.stale_polled.add(symbol)
            self.error_log.warning(
                "%s: still no update after resubscribing: served by HTTP polling while the "
                "other symbols stay on WebSocket",
                symbol,
            )
            self._poll([symbol], "stale on WebSocket")
        elif verdict is Verdict.RECOVERED and symbol in self.stale_polled:
            self.stale_polled.discard(symbol)
            self._unpoll([symbol])
            self.log.info("%s: updates again on WebSocket; HTTP polling for it stopped", symbol)

    async def _resubscribe(self, conn: Connection, symbol: str) -> None:
        if await self._control(conn.unsubscribe, "unsubscribe", [symbol]):
            await self._control(conn.subscribe, "subscribe", [symbol])

    async def _control(
        self,
        send: Callable[[Sequence[str]], Awaitable[None]],
        action: str,
        symbols: Sequence[str],
    ) -> bool:
        """(Un)subscribe on a live connection. A send that fails means the connection is
        failing: its own run reports that, and the reconnect subscribes every symbol of the
        shard, so nothing is lost; the failed send is logged and counted, not raised."""
        try:
            await send(symbols)
        except Exception as exc:
            self.counters.control_errors += 1
            self.metrics.error("control_send_failed")
            self.error_log.warning(
                "could not %s %s on a live connection (%s: %s); its reconnect will",
                action,
                ", ".join(symbols),
                type(exc).__name__,
                exc,
            )
            return False
        return True

    # --- reports from connections --------------------------------------------------------------

    def _malformed(self, reason: str, frame: str | bytes) -> None:
        self.counters.malformed += 1
        self.metrics.error("malformed")
        n = self.counters.malformed
        if n & (n - 1) == 0:  # the 1st, 2nd, 4th, 8th …: visible, never a flood
            shown = frame[:200] if isinstance(frame, str) else frame[:200].decode(errors="replace")
            self.error_log.warning("malformed frame #%d (%s): %r", n, reason, shown)

    def _rejected(self, shard: Shard, streams: Sequence[str], error: str) -> None:
        self.counters.rejected += 1
        self.metrics.error("rejected")
        self.error_log.error("the exchange refused %s: %s", ", ".join(streams), error)

    # --- control -------------------------------------------------------------------------------

    def reset(self, connection: int | None = None) -> int:
        """Reset open or exhausted breakers (an operator's action): every connection's, or only
        `connection`'s; returns how many were reset. The connection retries at once."""
        count = 0
        for shard in self.shards:
            if connection is not None and shard.id != connection:
                continue
            if shard.breaker.state is not BreakerState.CLOSED:
                self._log_transition(shard.breaker.reset(), shard)
                shard.backoff.reset()
                shard.wake.set()
                count += 1
        return count

    def describe_symbol(self, symbol: str) -> tuple[str, str]:
        return describe_symbol(self, symbol)

    @property
    def stopped(self) -> bool:
        """True once `stop()` was called."""
        return self._stopping

    def status_record(self) -> AdapterStatus:
        """Everything the guide's Monitoring section names, as typed records (`status`)."""
        return adapter_status(self)

    def status(self) -> dict[str, Any]:
        """`status_record()` as plain JSON-safe data. Call on the feed's loop."""
        plain: dict[str, Any] = to_plain(self.status_record())
        return plain

    async def status_async(self) -> dict[str, Any]:
        """`status()`, letting the loop run between chunks of symbols (for many symbols)."""
        plain: dict[str, Any] = to_plain(await adapter_status_async(self))
        return plain

    # --- state changes -------------------------------------------------------------------------

    def _opened(self, shard: Shard, at: float) -> None:
        shard.opened_at = at
        shard.connects += 1
        self._changed("connection", f"connection {shard.id}", "down", "up", "opened")

    def _changed(self, kind: str, subject: str, old: str, new: str, reason: str) -> None:
        change = StateChange(self.name, kind, subject, old, new, reason, time.time())
        self.changes.append(change)
        for listener in self.state_listeners:
            try:
                listener(change)
            except Exception:
                self.counters.plugin_errors += 1
                self.error_log.exception("a state listener raised")
        for exc in self.host.on_state_change(change):
            self.counters.plugin_errors += 1
            self.error_log.error("an on_state_change plugin raised %r", exc)

    def _note_transports(self, reason: str = "") -> None:
        """Report each symbol whose transport changed since the last call."""
        seen = self._transport_seen
        for symbol in list(seen):
            if symbol not in self.symbols:
                self._changed("transport", symbol, seen.pop(symbol), "none", "unsubscribed")
        for symbol, kind in sorted(self.transports().items()):
            now = kind.value if kind is not None else "connecting"
            before = seen.get(symbol, "connecting")
            if now != before:
                seen[symbol] = now
                self._changed("transport", symbol, before, now, reason)

    # --- metrics tasks -------------------------------------------------------------------------

    async def _sample_metrics(self) -> None:
        while True:
            self.metrics.sample(self.symbols)
            await asyncio.sleep(1.0)

    async def _sync_clock(self, source: ServerClock) -> None:
        """Round trips to the exchange's time endpoint: four at start, then one a minute."""
        done = 0
        warned = False
        offset = self.metrics.clock_offset
        while True:
            sent = time.time()
            try:
                server_ms = await source.server_time(self.context.session)
            except PollError as exc:
                if not warned:  # once until it works again
                    warned = True
                    self.error_log.warning(
                        "cannot read the exchange's clock (latency stays uncorrected): %s", exc
                    )
                done = 4  # a failing (or rate-limiting) exchange gets one try a minute, no burst
            else:
                offset.add(sent, server_ms, time.time())
                warned = False
            done += 1
            await asyncio.sleep(0.2 if done < 4 else CLOCK_SYNC_EVERY)

    def breaker_states(self) -> dict[int, BreakerState]:
        return {shard.id: shard.breaker.state for shard in self.shards}

    async def stop(self) -> None:
        """Cancel and await every task, close every connection, the poller and the session."""
        self._stopping = True
        for shard in self.shards:
            shard.wake.set()
            if shard.conn is not None:
                with contextlib.suppress(Exception):  # stopping: a failing close changes nothing
                    await shard.conn.close()
        if self.poller is not None:
            await self.poller.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):  # cancelled above; failures were reported
                await task
        for buffer in self.buffers:  # what was received reaches its consumer
            await buffer.drain()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def describe_symbol(feed: Feed, symbol: str) -> tuple[str, str]:
    """(transport, breaker state) of a symbol, as the live table shows them."""
    transport = feed.transport_of(symbol)
    shard = next((s for s in feed.shards if symbol in s.symbols), None)
    breaker = shard.breaker.state.value if shard is not None else "—"
    return (transport.value if transport is not None else "connecting", breaker)
