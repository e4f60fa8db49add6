"""The feed: one per adapter. Routing, the HTTP poller and the hand-over between transports.

Symbols routed to WebSocket are split into shards that respect the exchange's per-connection
stream limit; each shard's connection is run by a `ShardSupervisor` (connect, health, backoff,
breaker, rotation), which reports to the feed through the small `ShardOwner` interface. The
feed keeps what spans shards: which transport serves each symbol (`Coverage`, the liveness
contract: a symbol the WebSocket cannot prove it delivers is polled, whatever the breaker's
state), the one poller, the clock sync and the status. Everything reaches consumers through the
`Sequencer`, so whichever transport delivered a quote, consumers see no duplicate and nothing
older after newer.

Logs follow the guide: `<Display>` for state, `<Display>WebSocket` for reconnects,
`<Display>Error` for failures; each change is logged once, nothing is logged per tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any

import aiohttp

from foxtrot_stream.config.settings import INSECURE_HINT, Settings, insecure_urls
from foxtrot_stream.contract.model import Tick, TransportKind
from foxtrot_stream.contract.plugins import PluginHost
from foxtrot_stream.contract.records import (
    Connection,
    ConnectionEvents,
    ConnectionListener,
    ExchangeAdapter,
    Failure,
    FeedContext,
    FrameHandler,
    Instrument,
    Instruments,
    InstrumentSink,
    Poller,
    PollError,
    RateLimited,
    RestHold,
    ServerClock,
    Sink,
    StateChange,
    SymbolLister,
    TickSink,
    TransportFailure,
    names,
)
from foxtrot_stream.policy.breaker import BreakerState, Transition
from foxtrot_stream.policy.coverage import Coverage, Decisions, Serving
from foxtrot_stream.runtime.buffer import ConflatingBuffer, SlowConsumer
from foxtrot_stream.runtime.metrics import FeedMetrics
from foxtrot_stream.runtime.routing import why_http
from foxtrot_stream.runtime.sequencer import Consumer, Sequencer
from foxtrot_stream.runtime.status import (
    AdapterStatus,
    ConnectBudgetStatus,
    FeedCounters,
    FeedRecord,
    HttpStatus,
    SymbolRoute,
    adapter_status,
    adapter_status_async,
    to_plain,
)
from foxtrot_stream.runtime.supervisor import ShardSupervisor
from foxtrot_stream.transport.websocket import BUDGETS
from foxtrot_stream.util.redact import redact
from foxtrot_stream.util.shard import parse_shard, shard_of

#: Seconds between two round trips to the exchange's time endpoint (the first four are quick).
CLOCK_SYNC_EVERY = 60.0
#: The coverage check runs at least this often (more often for short heartbeats).
MAX_CHECK_STEP = 1.0
#: How long a sent subscription waits for the exchange's confirmation before its symbol's
#: silence is judged anyway (an exchange that never answers subscriptions).
SUBSCRIBE_CONFIRM_TIMEOUT = 10.0


def liveness_timings(heartbeat: float) -> tuple[float, float, float, float]:
    """(quiet_after, prove_for, grace, check step) for a heartbeat interval: see `coverage`."""
    quiet_after = heartbeat / 2
    step = min(quiet_after / 2, MAX_CHECK_STEP)
    grace = min(quiet_after / 2, MAX_CHECK_STEP)
    return quiet_after, heartbeat, grace, step


def liveness_bound(heartbeat: float, poll_interval: float, rest_answer: float) -> float:
    """B of the liveness contract (docs/user-guide.md): the longest a change of a wanted
    symbol's quote can take to reach consumers while REST answers within `rest_answer`:
    noticed within `quiet_after` + one check step, in the next poll (an interval later at most,
    or when the one under way has answered), answered `rest_answer` later."""
    quiet_after, _, _, step = liveness_timings(heartbeat)
    return quiet_after + step + max(poll_interval, rest_answer) + rest_answer


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
        self.transport = host.stream_transport(adapter) or "websocket"
        """The stream transport the connections use: chosen by registration (`TransportSpec`),
        the core's `websocket` unless a plugin registers one for this adapter."""
        self.clock = clock
        self.log = logging.getLogger(self.display)
        self.error_log = logging.getLogger(f"{self.display}Error")
        self.consumers: list[Consumer] = []
        self.buffers: list[ConflatingBuffer] = []
        self.sinks: list[Sink] = []
        """The sinks the settings enable (`register_sinks`), built and started by `start()`."""
        self.counters = FeedCounters()
        self.sequencer = Sequencer(
            self.consumers,
            consumer_failed=self._consumer_raised,
            rejected=self._rejected_tick,
            resynced=self._resynced,
        )
        self.metrics = FeedMetrics(self.sequencer.delivered, clock)
        self.sequencer.latency = self.metrics.record  # a sample per tick with an exchange time
        self.changes: deque[StateChange] = deque(maxlen=100)
        """The latest state changes, oldest first (also sent to `on_state_change`)."""
        self.state_listeners: list[Callable[[StateChange], None]] = []
        self.shards: list[ShardSupervisor] = []
        self._shard_of: dict[str, ShardSupervisor] = {}
        self.poller: Poller | None = None
        self.symbols: dict[str, str | None] = {}
        """Subscribed symbol → why it is on HTTP by the settings (None: routed to WebSocket)."""
        self.refused: dict[str, str] = {}
        self.shard = parse_shard(settings.adapter(adapter).shard)
        """The share of the symbols this feed serves (`websocket.<adapter>.shard`, `run
        --shard`): a symbol of another shard is left to that shard's process."""
        self.elsewhere: set[str] = set()
        """Symbols asked for that belong to another shard (not streamed here, not an error)."""
        heartbeat = settings.websocket.heartbeat.interval
        quiet_after, prove_for, grace, self._check_every = liveness_timings(heartbeat)
        self.coverage = Coverage(quiet_after, prove_for, grace)
        self.rest_hold = RestHold(clock)
        self._rest_seen: dict[str, float] = {}
        """symbol → when REST last answered for it (delivered or not)."""
        self._reported: dict[str, str] = {}
        """symbol → the transport last reported in a state change."""
        self._resynced_once: set[str] = set()
        self._resubscribed: dict[str, float] = {}
        """symbol → when it was last resubscribed because its WebSocket lost or refused it."""
        self._symbol_of_stream: dict[str, str] = {}
        self._subscription_sent: dict[str, float] = {}
        """symbol → when a subscription was sent that the exchange has not confirmed yet."""
        self._subscription_confirmed: dict[str, float] = {}
        """symbol → when the exchange last confirmed a subscription of it."""
        self._shard_ids = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._context: FeedContext | None = None
        self._stopping = False
        self._consumer_failed: set[int] = set()

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
        return self.host.control_messages(self.adapter, method, streams, next_id)

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
            poll_sink=self._polled,
            handler_for=self._handler_for,
            messages_for=self._messages_for,
            display_name=self.display,
            connect_budgets=self.connect_budgets,
            plugin_settings=self.settings.plugins,
            rest_hold=self.rest_hold,
        )
        for prefix, obj in self.settings.plugins.items():
            for field, url in insecure_urls(obj):
                self.error_log.warning(
                    "%s.%s = %s is not encrypted: %s", prefix, field, redact(url), INSECURE_HINT
                )
        self._spawn(self._watch_coverage(), f"{self.name}-coverage")
        self._spawn(self._sample_metrics(), f"{self.name}-metrics")
        if isinstance(self.adapter, ServerClock):
            self._spawn(self._sync_clock(self.adapter), f"{self.name}-clock")
        await self._start_sinks()
        await self.subscribe(symbols)

    async def _start_sinks(self) -> None:
        """Build and start each sink the settings enable; each is one more consumer (its `put`
        only buffers). A sink that cannot be built or started is reported, not fatal."""
        for spec, settings in self.host.enabled_sinks(self.settings):
            try:
                sink = spec.factory(settings, self.name)
                await sink.start()
            except Exception:
                self.counters.plugin_errors += 1
                self.error_log.exception(
                    "sink %s did not start; the feed goes on without it", spec.name
                )
                continue
            self.sinks.append(sink)
            self.consumers.append(sink.put)
            self.log.info("publishing to sink %s", spec.name)
        listing = any(isinstance(s, InstrumentSink) for s in self.sinks)
        if listing and isinstance(self.adapter, Instruments):
            self._spawn(self._publish_instruments(), f"{self.name}-instruments")

    async def _publish_instruments(self) -> None:
        """Hand the exchange's instrument list to the sinks that publish it (hosts reading
        from them get contracts): once, retried while the exchange cannot tell (1, 2, 4 … 60 s
        apart, told once)."""
        wait = 1.0
        while True:
            try:
                instruments = await self.instruments()
                break
            except PollError as exc:
                if wait == 1.0:
                    self.log.warning("no instrument list for the sinks yet (%s); retrying", exc)
                await asyncio.sleep(wait)
                wait = min(wait * 2, 60.0)
            except Exception:  # the adapter broke its contract (PollError only): say so, once
                self.counters.plugin_errors += 1
                self.error_log.exception("the %s adapter's instrument list failed", self.name)
                return
        for sink in self.sinks:
            if not isinstance(sink, InstrumentSink):
                continue
            try:
                sink.put_instruments(instruments)
            except Exception:
                self.counters.plugin_errors += 1
                self.error_log.exception("sink %s refused the instrument list", sink.name)

    def _sink_health(self) -> list[dict[str, Any]]:
        out = []
        for sink in self.sinks:
            try:
                out.append(dict(sink.health()))
            except Exception as exc:
                out.append({"name": getattr(sink, "name", "?"), "error": repr(exc)})
        return out

    # --- subscriptions -------------------------------------------------------------------------

    async def trading_symbols(self) -> tuple[str, ...]:
        """Every symbol the exchange lists as trading (the adapter's `SymbolLister`); raises
        `PollError` if it cannot tell, `TypeError` if the adapter cannot list symbols."""
        if not isinstance(self.adapter, SymbolLister):
            raise TypeError(f"the {self.name} adapter cannot list the exchange's symbols")
        return await self.adapter.trading_symbols(self.context.session)

    async def instruments(self) -> tuple[Instrument, ...]:
        """Every instrument the exchange lists (the adapter's `Instruments`); raises
        `PollError` if it cannot tell, `TypeError` if the adapter cannot list them."""
        if not isinstance(self.adapter, Instruments):
            raise TypeError(f"the {self.name} adapter cannot list the exchange's instruments")
        return tuple(await self.adapter.instruments(self.context.session))

    async def subscribe(self, symbols: Iterable[str]) -> dict[str, str]:
        """Add symbols; returns the ones refused (symbol → why), the others go on. A symbol of
        another shard is returned with that as the reason, and is not counted as refused."""
        wanted = [s for s in dict.fromkeys(x.upper() for x in symbols) if s not in self.symbols]
        others: dict[str, str] = {}
        if not self.shard.everything and wanted:
            mine = self.shard.select(wanted)
            for symbol in wanted:
                if symbol not in mine:
                    others[symbol] = (
                        f"shard {shard_of(symbol, self.shard.count)}/{self.shard.count}'s, "
                        f"this feed serves shard {self.shard}"
                    )
            self.elsewhere.update(others)
            self.log.info(
                "shard %s: %d of %d symbols are this shard's", self.shard, len(mine), len(wanted)
            )
            wanted = mine
        if not wanted:
            return others
        try:
            check = await self.adapter.validate_symbols(self.context.session, wanted)
            valid, refused = list(check.valid), dict(check.invalid)
        except PollError as exc:
            self.error_log.warning(
                "cannot check symbols against the exchange (%s); using them", exc
            )
            valid, refused = wanted, {}
        valid = [s for s in valid if s not in self.symbols]  # subscribed meanwhile
        for symbol, why in refused.items():
            self.error_log.error("%s refused: %s", symbol, why)
        self.refused.update(refused)
        to_ws: list[str] = []
        by_reason: dict[str, list[str]] = {}
        for symbol in valid:
            reason = why_http(self.settings, self.name, symbol)
            self.symbols[symbol] = reason
            self.refused.pop(symbol, None)
            self.sequencer.track(symbol)
            if reason is None:
                to_ws.append(symbol)
                self.coverage.add(symbol, 0)
                for stream in self.adapter.streams_for(symbol):
                    self._symbol_of_stream[stream] = symbol
            else:
                by_reason.setdefault(reason, []).append(symbol)
        for reason, group in by_reason.items():
            self.log.info("HTTP polling for %s (%s)", names(group), reason)
            self._poll(group)
        if to_ws:
            # polled from the start: the WebSocket takes each symbol over once it has proven
            # that it delivers it (coverage)
            self._poll(to_ws)
            await self._place(to_ws)
        self._report([*to_ws, *itertools.chain.from_iterable(by_reason.values())], "subscribed")
        return refused | others

    async def unsubscribe(self, symbols: Iterable[str]) -> None:
        gone = [s.upper() for s in symbols if s.upper() in self.symbols]
        for symbol in gone:
            del self.symbols[symbol]
            self.sequencer.forget(symbol)
            self.coverage.remove(symbol)
            self._resubscribed.pop(symbol, None)
            self._subscription_sent.pop(symbol, None)
            self._subscription_confirmed.pop(symbol, None)
            for stream in self.adapter.streams_for(symbol):
                self._symbol_of_stream.pop(stream, None)
            self.metrics.forget(symbol)
            self._rest_seen.pop(symbol, None)
        if self.poller is not None:
            self.poller.remove(gone)
        by_shard: dict[ShardSupervisor, list[str]] = {}
        for symbol in gone:
            shard = self._shard_of.pop(symbol, None)
            if shard is not None:
                by_shard.setdefault(shard, []).append(symbol)
        for shard, leaving in by_shard.items():
            await shard.remove(leaving)
            if not shard.symbols:
                await shard.stop()
        self.shards = [s for s in self.shards if s.symbols]
        self._report(gone, "unsubscribed")

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
            for symbol in added:
                self._shard_of[symbol] = shard
            await shard.add(added)
        settings = self.settings
        while pending:
            group, pending = pending[:capacity], pending[capacity:]
            shard = ShardSupervisor(
                next(self._shard_ids),
                group,
                self,
                backoff=self.policy.make_backoff(settings),
                breaker=self.policy.make_breaker(settings, self.clock),
                heartbeat=settings.websocket.heartbeat.interval,
                recovery_timeout=settings.websocket.circuit_breaker.recovery_timeout,
                max_lifetime=self.adapter.limits.max_lifetime,
                max_idle=self.adapter.limits.max_idle,
                display=self.display,
                clock=self.clock,
            )
            for symbol in group:
                self._shard_of[symbol] = shard
            self.shards.append(shard)
            self._spawn(shard.run(), f"{self.name}-shard-{shard.id}")

    # --- HTTP polling ------------------------------------------------------------------------

    def _poll(self, symbols: Sequence[str]) -> None:
        if not symbols:
            return
        if self.poller is None:
            try:
                self.poller = self.host.fallback(self.context, symbols, "subscribed")
            except Exception:
                self.counters.plugin_errors += 1
                self.error_log.exception("the fallback plugin raised; %s unserved", symbols)
                return
            if self.poller is None:
                self.error_log.error(
                    "no HTTP fallback plugin can poll %s: %s are unserved until the WebSocket "
                    "delivers them",
                    self.name,
                    names(symbols),
                )
                return
            self._spawn(self.poller.run(), f"{self.name}-poller")
        self.poller.add(symbols)

    def _unpoll(self, symbols: Sequence[str]) -> None:
        if self.poller is not None and symbols:
            self.poller.remove(symbols)

    def _polled(self, tick: Tick, requested_ns: int) -> None:
        """Every polled quote (the `poll_sink`): sequenced, and noted for the coverage — a
        delivered one showed a change; any answer shows REST is answering for the symbol."""
        symbol = tick.symbol
        now = self.clock()
        self._rest_seen[symbol] = now
        if self.sequencer.polled(tick, requested_ns) and symbol in self.coverage:
            self.coverage.rest_delivered(symbol, now, self.sequencer.streamed_count(symbol))

    # --- which transport serves each symbol (the liveness contract) ---------------------------

    async def _watch_coverage(self) -> None:
        """Apply `Coverage` every check step: poll what the WebSocket cannot prove it delivers,
        stop polling what it has proven, react to symbols it silently lost."""
        while True:
            await asyncio.sleep(self._check_every)
            await self._check_coverage()

    async def _check_coverage(self) -> None:
        shard_of = self._shard_of
        streamed = self.sequencer.streamed_count

        now = self.clock()

        def open_for(symbol: str) -> float | None:
            shard = shard_of.get(symbol)
            opened = shard.opened_at if shard is not None else None
            if opened is None:
                return None
            since = self._subscribed_since(symbol, opened, now)
            return 0.0 if since is None else now - since

        def down_reason(symbol: str) -> str:
            shard = shard_of.get(symbol)
            return shard.down_reason() if shard is not None else "not placed on a connection"

        decisions = self.coverage.evaluate(now, streamed, open_for, down_reason)
        if decisions:
            await self._apply(decisions)
        self._retry_lost(now)

    def _retry_lost(self, now: float) -> None:
        """A symbol its live WebSocket lost or refused gets a new subscription at most once
        per breaker recovery timeout (the exchange may have recovered; one control message
        each). Meanwhile it is polled."""
        retry_every = self.settings.websocket.circuit_breaker.recovery_timeout
        for symbol in self.coverage.lost():
            shard = self._shard_of.get(symbol)
            if shard is None or not shard.live:
                continue
            if now - self._resubscribed.get(symbol, -math.inf) >= retry_every:
                self._resubscribed[symbol] = now
                self.counters.stale_resubscribes += 1
                self._spawn(shard.resubscribe(symbol), f"{self.name}-resubscribe")

    async def _apply(self, decisions: Decisions) -> None:
        self._poll(decisions.poll)
        self._unpoll(decisions.unpoll)
        handed_back = [s for s in decisions.unpoll if s in decisions.changed]
        if handed_back:
            self.log.info(
                "WebSocket streams %s (delivering for a heartbeat interval): HTTP polling for "
                "%s stopped",
                names(handed_back),
                "it" if len(handed_back) == 1 else "them",
            )
        self._report(decisions.changed, "WebSocket proven" if handed_back else "")
        for symbol in decisions.stale:
            await self._stale(symbol)

    async def _stale(self, symbol: str) -> None:
        """REST showed a change of `symbol` that its live WebSocket did not deliver."""
        shard = self._shard_of.get(symbol)
        if shard is None or not shard.live:
            return
        quiet_after = self.coverage.quiet_after
        silent = shard.silent_for()
        if silent >= quiet_after:
            # the whole connection is silent while the market moves: it is dead, not quiet
            await shard.fail(
                "no_data", f"no data for {silent:.1f}s while REST shows {symbol} changing"
            )
            return
        count = self.coverage.stale_count(symbol)
        if count == 1:
            self.counters.stale_resubscribes += 1
            self._resubscribed[symbol] = self.clock()
            self.error_log.warning(
                "%s: no update on its live WebSocket while REST shows it changing: served by "
                "HTTP polling, resubscribing",
                symbol,
            )
            self._spawn(shard.resubscribe(symbol), f"{self.name}-resubscribe")
        elif count == 2:
            self.counters.stale_polled += 1
            self.error_log.warning(
                "%s: still no update after resubscribing: served by HTTP polling while the "
                "other symbols stay on WebSocket (resubscribed every %gs until it streams)",
                symbol,
                self.settings.websocket.circuit_breaker.recovery_timeout,
            )

    def transports(self) -> dict[str, TransportKind | None]:
        """The transport serving each subscribed symbol (None: no transport yet)."""
        return {symbol: self._transport(symbol) for symbol in self.symbols}

    def transport_of(self, symbol: str) -> TransportKind | None:
        return self._transport(symbol) if symbol in self.symbols else None

    def _transport(self, symbol: str) -> TransportKind | None:
        serving = self.coverage.serving(symbol)
        if serving is not None and serving is not Serving.HTTP:
            return TransportKind.WEBSOCKET
        if self.poller is not None:
            return TransportKind.HTTP
        return None

    def _report(self, symbols: Iterable[str], reason: str) -> None:
        """A state change for each symbol whose reported transport changed."""
        reported = self._reported
        for symbol in symbols:
            if symbol not in self.symbols:
                old = reported.pop(symbol, None)
                if old is not None:
                    self._changed("transport", symbol, old, "none", "unsubscribed")
                continue
            kind = self._transport(symbol)
            now = kind.value if kind is not None else "connecting"
            before = reported.get(symbol, "connecting")
            if now != before:
                reported[symbol] = now
                why = reason or self.coverage.reason(symbol) or "WebSocket delivers"
                self._changed("transport", symbol, before, now, why)

    # --- ShardOwner: what the shard supervisors report -----------------------------------------

    def open_connection(
        self, shard: ShardSupervisor, symbols: Sequence[str], listener: ConnectionListener
    ) -> Connection | None:
        try:
            return self.host.connect(self.context, self.transport, symbols, listener)
        except Exception:
            self.counters.plugin_errors += 1
            raise

    def connection_up(self, shard: ShardSupervisor) -> None:
        self._changed("connection", f"connection {shard.id}", "down", "up", "opened")

    def connection_down(self, shard: ShardSupervisor, reason: str) -> None:
        self._changed("connection", f"connection {shard.id}", "up", "down", reason)
        decisions = self.coverage.down(shard.symbols, shard.down_reason())
        self._poll(decisions.poll)  # at once: not at the next check
        self._report(decisions.changed, f"connection {reason}")

    def connection_failed(self, shard: ShardSupervisor, failure: TransportFailure) -> None:
        kind = failure.kind
        self.counters.failures[kind] = self.counters.failures.get(kind, 0) + 1
        self.metrics.error(kind)
        for exc in self.host.on_failure(
            Failure(self.name, self.transport, kind, failure.detail, tuple(shard.symbols))
        ):
            self.counters.plugin_errors += 1
            self.error_log.error("an on_failure plugin raised %r", exc)

    def breaker_changed(self, shard: ShardSupervisor, transition: Transition) -> None:
        if transition.new is not BreakerState.CLOSED and transition.old is BreakerState.CLOSED:
            self.counters.breaker_opens += 1
        self._changed(
            "breaker",
            f"connection {shard.id}",
            transition.old.value,
            transition.new.value,
            transition.reason,
        )

    def rejected(self, shard: ShardSupervisor, streams: Sequence[str], error: str) -> None:
        self.counters.rejected += 1
        self.metrics.error("rejected")
        self.error_log.error("the exchange refused %s: %s", names(streams), error)
        named = set(streams)
        symbols = [s for s in shard.symbols if named & set(self.adapter.streams_for(s))]
        self.coverage.refused(symbols, error)

    def malformed(self, reason: str, frame: str | bytes) -> None:
        self.counters.malformed += 1
        self.metrics.error("malformed")
        n = self.counters.malformed
        if n & (n - 1) == 0:  # the 1st, 2nd, 4th, 8th …: visible, never a flood
            shown = frame[:200] if isinstance(frame, str) else frame[:200].decode(errors="replace")
            self.error_log.warning("malformed frame #%d (%s): %r", n, reason, shown)

    def control_failed(self) -> None:
        self.counters.control_errors += 1
        self.metrics.error("control_send_failed")

    def subscribing(self, streams: Sequence[str], pending: bool) -> None:
        now = self.clock()
        symbol_of = self._symbol_of_stream
        for symbol in {symbol_of[s] for s in streams if s in symbol_of}:
            if pending:
                self._subscription_sent[symbol] = now
            elif self._subscription_sent.pop(symbol, None) is not None:
                self._subscription_confirmed[symbol] = now

    def _subscribed_since(self, symbol: str, opened: float, now: float) -> float | None:
        """Since when `symbol` is subscribed on its connection, open since `opened`: then, or
        when the exchange confirmed a later subscription; None while one is unconfirmed (for
        at most `SUBSCRIBE_CONFIRM_TIMEOUT`: an exchange that never confirms is then taken at
        its word)."""
        since = opened
        sent = self._subscription_sent.get(symbol)
        if sent is not None and sent >= opened:
            if now - sent < SUBSCRIBE_CONFIRM_TIMEOUT:
                return None
            since = sent
        confirmed = self._subscription_confirmed.get(symbol)
        return max(since, confirmed) if confirmed is not None else since

    def quiet_confirmed(self, symbols: Sequence[str], since: float) -> bool:
        seen = self._rest_seen
        coverage = self.coverage
        return bool(symbols) and all(
            seen.get(s, -math.inf) > since and not coverage.pending_evidence(s) for s in symbols
        )

    # --- reports from the sequencer ------------------------------------------------------------

    def _rejected_tick(self, reason: str, tick: Tick) -> None:
        self.malformed(reason, repr(tick))

    def _resynced(self, symbol: str, old: tuple[int, int], new: tuple[int, int]) -> None:
        self.counters.resyncs += 1
        if symbol not in self._resynced_once:  # logged once per symbol, counted every time
            self._resynced_once.add(symbol)
            self.error_log.warning(
                "%s: the exchange's ids went back from %s to %s and kept going (an exchange "
                "restart, or a corrupt id): ordering continues from the new ids",
                symbol,
                old,
                new,
            )

    # --- control -------------------------------------------------------------------------------

    def reset(self, connection: int | None = None) -> int:
        """Reset open or exhausted breakers (an operator's action): every connection's, or only
        `connection`'s; returns how many were reset. The connection retries at once."""
        return sum(shard.reset() for shard in self.shards if connection in (None, shard.id))

    def describe_symbol(self, symbol: str) -> tuple[str, str]:
        """(transport, breaker state) of a symbol, as the live table shows them."""
        kind = self.transport_of(symbol)
        shard = self._shard_of.get(symbol)
        breaker = shard.breaker.state.value if shard is not None else "—"
        return (kind.value if kind is not None else "connecting", breaker)

    @property
    def rotations(self) -> int:
        """Connections replaced before the exchange's lifetime cut or on its shutdown notice."""
        return sum(shard.rotations for shard in self.shards)

    def breaker_states(self) -> dict[int, BreakerState]:
        return {shard.id: shard.breaker.state for shard in self.shards}

    @property
    def stopped(self) -> bool:
        """True once `stop()` was called."""
        return self._stopping

    # --- status --------------------------------------------------------------------------------

    def record(self) -> FeedRecord:
        """What status is built from: the feed's state as records (`status.FeedRecord`)."""
        coverage = self.coverage
        routes: dict[str, SymbolRoute] = {}
        for symbol, routed in self.symbols.items():
            kind = self._transport(symbol)
            shard = self._shard_of.get(symbol)
            if routed is not None:
                reason = routed
            elif kind is TransportKind.WEBSOCKET:
                reason = coverage.reason(symbol)
            else:
                reason = coverage.reason(symbol) or "connecting"
            routes[symbol] = SymbolRoute(
                transport=kind.value if kind is not None else "connecting",
                reason=reason,
                connection=shard.id if shard is not None else None,
                breaker=shard.breaker.state.value if shard is not None else "—",
                routed=routed is not None,
                stale=coverage.stale_count(symbol) > 0 and coverage.serving(symbol) is Serving.HTTP,
            )
        poller = self.poller
        return FeedRecord(
            adapter=self.name,
            display_name=self.display,
            stopped=self._stopping,
            now=self.clock(),
            symbols=routes,
            shards=[shard.record() for shard in self.shards],
            metrics=self.metrics,
            sequenced=self.sequencer.counts,
            per_symbol=self.sequencer.per_symbol,
            counters=self.counters,
            http=HttpStatus(
                symbols=sorted(poller.symbols) if poller is not None else [],
                polls=getattr(poller, "polls", 0),
                failed_polls=getattr(poller, "failed_polls", 0),
                rate_limited=getattr(poller, "rate_limited", 0),
                rate_limit_wait_seconds=float(getattr(poller, "rate_limit_wait", 0.0)),
                weight_holds=getattr(poller, "weight_holds", 0),
                used_weight=getattr(poller, "used_weight", None),
                held_seconds=round(self.rest_hold.remaining(), 3),
                unchanged=self.sequencer.counts.polled_unchanged,
                superseded=self.sequencer.counts.polled_superseded,
            ),
            consumer_dropped=sum(b.dropped for b in self.buffers),
            connect_budgets=[
                ConnectBudgetStatus(host, b.attempts, b.waits, round(b.waited, 3))
                for host, b in sorted(self.connect_budgets.items())
            ],
            refused=dict(self.refused),
            changes=list(self.changes),
            sinks=self._sink_health(),
            shard=str(self.shard),
        )

    def status_record(self) -> AdapterStatus:
        """Everything the guide's Monitoring section names, as typed records (`status`)."""
        return adapter_status(self.record())

    def status(self) -> dict[str, Any]:
        """`status_record()` as plain JSON-safe data. Call on the feed's loop."""
        plain: dict[str, Any] = to_plain(self.status_record())
        return plain

    async def status_async(self) -> dict[str, Any]:
        """`status()`, letting the loop run between chunks of symbols (for many symbols)."""
        plain: dict[str, Any] = to_plain(await adapter_status_async(self.record()))
        return plain

    # --- state changes -------------------------------------------------------------------------

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

    # --- background tasks ----------------------------------------------------------------------

    async def _sample_metrics(self) -> None:
        while True:
            self.metrics.sample(self.symbols)
            await asyncio.sleep(1.0)

    async def _sync_clock(self, source: ServerClock) -> None:
        """Round trips to the exchange's time endpoint: four at start, then one a minute; none
        while the exchange has asked us to hold REST requests (a 429, or a 418 ban)."""
        done = 0
        warned = False
        offset = self.metrics.clock_offset
        while True:
            held = self.rest_hold.remaining()
            if held > 0:
                await asyncio.sleep(held)
                continue
            sent = time.time()
            try:
                server_ms = await source.server_time(self.context.session)
            except RateLimited as exc:
                self.rest_hold.hold(exc.retry_after, str(exc))
                continue
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

    async def stop(self) -> None:
        """Stop every shard, the poller and every task; deliver what buffered consumers hold."""
        self._stopping = True
        for shard in self.shards:
            await shard.stop()
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
        for sink in self.sinks:  # and its sinks (each flushes within its own time limit)
            try:
                await sink.stop()
            except Exception:
                self.counters.plugin_errors += 1
                self.error_log.exception("sink %s failed to stop cleanly", sink.name)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
