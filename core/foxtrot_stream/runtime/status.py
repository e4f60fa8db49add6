"""A feed's state as typed records (attrs) and as plain data (cattrs): what `status()` returns.

Built on demand from the records the runtime publishes (`FeedRecord`: the feed's routes and
counters, its shard supervisors' `ShardRecord`s, and `FeedMetrics`), never from the feed
itself; nothing here runs per tick.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterable, Iterator
from typing import Any

import attrs
import cattrs

from foxtrot_stream.contract.records import StateChange
from foxtrot_stream.policy.breaker import BreakerState
from foxtrot_stream.runtime.metrics import (
    LATENCY_RING,
    LATENCY_WINDOW,
    POOL_SAMPLES,
    FeedMetrics,
    LatencyStats,
    latency_pair,
    pool,
)
from foxtrot_stream.runtime.sequencer import SequencerCounts
from foxtrot_stream.runtime.supervisor import ShardRecord

_converter = cattrs.Converter()


@attrs.define
class FeedCounters:
    """A feed's event counts since it started (the runtime writes them, status reads them)."""

    malformed: int = 0
    """Frames that could not be decoded, and ticks refused at the edge (sequencer)."""
    failures: dict[str, int] = attrs.Factory(dict)
    consumer_errors: int = 0
    plugin_errors: int = 0
    rejected: int = 0
    """Subscriptions the exchange refused."""
    stale_resubscribes: int = 0
    control_errors: int = 0
    """(Un)subscribe messages that could not be sent on a live connection."""
    stale_polled: int = 0
    resyncs: int = 0
    """Times a symbol's exchange ids went back and ordering restarted from the new ones."""
    breaker_opens: int = 0


@attrs.frozen
class SymbolRoute:
    """Which transport serves a symbol now, and why (published by the feed)."""

    transport: str
    """websocket | http | connecting (neither yet)"""
    reason: str
    """Why it is not (or not only) on the WebSocket: "" when streamed normally."""
    connection: int | None
    breaker: str
    routed: bool
    """On HTTP by the settings (not by a failure)."""
    stale: bool
    """On HTTP because its live WebSocket stopped delivering it."""


@attrs.frozen
class SymbolStatus:
    symbol: str
    transport: str
    """websocket | http | connecting"""
    breaker: str
    """The state of the breaker of the connection this symbol belongs to (— if none)."""
    connection: int | None
    ticks: int
    """Ticks delivered to consumers (after ordering and de-duplication)."""
    updates_per_second: float
    last_update_age: float | None
    """Seconds since the last delivered tick."""
    latency_ms: LatencyStats
    """Exchange event time → local receipt, raw (local clock minus exchange clock)."""
    latency_corrected_ms: LatencyStats | None
    """The same, corrected by the estimated clock offset (None before an estimate exists)."""
    dropped_duplicate: int
    dropped_stale: int
    stale_on_websocket: bool
    """Served by HTTP alone because it went stale on a live connection."""
    reason: str
    """Why it is on HTTP (or polled while on the WebSocket): "" when streamed normally."""
    resyncs: int
    """Times its exchange ids went back and ordering restarted from the new ones."""


@attrs.frozen
class ConnectionStatus:
    id: int
    symbols: int
    live: bool
    breaker: str
    breaker_seconds_in_state: float
    consecutive_failures: int
    uptime: float | None
    """Seconds since this connection's last (re)connect; None while it is down."""
    connects: int
    reconnects: int
    failures: dict[str, int]
    """This connection's failures by kind since the feed started."""
    updates_per_second: float
    latency_ms: LatencyStats
    latency_corrected_ms: LatencyStats | None


@attrs.frozen
class ClockStatus:
    offset_ms: float | None
    """Exchange clock minus local clock; add it to a raw latency to correct it."""
    uncertainty_ms: float | None
    samples: int
    last_sync_age: float | None


@attrs.frozen
class HttpStatus:
    symbols: list[str]
    polls: int
    failed_polls: int
    rate_limited: int
    rate_limit_wait_seconds: float
    weight_holds: int
    used_weight: int | None
    held_seconds: float
    """Seconds until REST may be asked again (a 429/418 Retry-After or the weight limit)."""
    unchanged: int = 0
    """Answers equal to the quote consumers already had (not delivered again)."""
    superseded: int = 0
    """Answers asked before a newer streamed tick arrived (not delivered)."""


@attrs.frozen
class ConnectBudgetStatus:
    host: str
    attempts: int
    waits: int
    waited_seconds: float


@attrs.frozen
class AdapterStatus:
    adapter: str
    display_name: str
    state: str
    """streaming | connecting | degraded (a breaker is not CLOSED, or a symbol went stale: HTTP
    fallback) | recovering (handing symbols back to the WebSocket) | exhausted | polling (all
    symbols routed to HTTP by the settings) | stopped"""
    ticks: int
    updates_per_second: float
    latency_ms: LatencyStats
    """Over every symbol's window together."""
    latency_corrected_ms: LatencyStats | None
    symbols: dict[str, SymbolStatus]
    """By symbol, sorted."""
    connections: list[ConnectionStatus]
    errors_per_minute: dict[str, int]
    errors_total: dict[str, int]
    reconnects: int
    rotations: int
    malformed_frames: int
    rejected_subscriptions: int
    stale_resubscribes: int
    resyncs: int
    dropped_duplicate: int
    dropped_stale: int
    consumer_dropped: int
    consumer_errors: int
    plugin_errors: int
    http: HttpStatus
    clock: ClockStatus
    connect_budgets: list[ConnectBudgetStatus]
    refused: dict[str, str]
    recent_changes: list[StateChange]
    sinks: list[dict[str, Any]] = attrs.Factory(list)
    """Each of the feed's sinks' `health()` (name, connected, written, dropped, queued, …)."""
    source: dict[str, Any] | None = None
    """When the adapter's ticks are read from a source (``<key>.consume``) instead of the
    exchange: the source's `health()` (connected, read, reconnects, errors, …) and ``lag_ms``
    (now minus the last tick's `received_ts`: how far behind the feed that published it)."""
    shard: str = "0/1"
    """`I/N`: the share of the symbols this process serves (`websocket.<adapter>.shard`, `run
    --shard`); ``0/1`` is every symbol."""


@attrs.frozen
class FeedRecord:
    """A feed's state, as it publishes it for status (`Feed.record()`)."""

    adapter: str
    display_name: str
    stopped: bool
    now: float
    """The feed's clock when the record was taken."""
    symbols: dict[str, SymbolRoute]
    shards: list[ShardRecord]
    metrics: FeedMetrics
    sequenced: SequencerCounts
    per_symbol: dict[str, SequencerCounts]
    counters: FeedCounters
    http: HttpStatus
    consumer_dropped: int
    connect_budgets: list[ConnectBudgetStatus]
    refused: dict[str, str]
    changes: list[StateChange]
    sinks: list[dict[str, Any]] = attrs.Factory(list)
    shard: str = "0/1"


def to_plain(record: Any) -> Any:
    """attrs records → dicts, lists and scalars (JSON-safe)."""
    return _converter.unstructure(record)


def _state(record: FeedRecord, symbols: list[SymbolStatus]) -> str:
    if record.stopped:
        return "stopped"
    states = {shard.breaker for shard in record.shards}
    if BreakerState.EXHAUSTED in states:
        return "exhausted"
    routes = record.symbols
    if states - {BreakerState.CLOSED} or any(r.stale for r in routes.values()):
        return "degraded"
    if not symbols:
        return "connecting"
    # symbols routed to HTTP by the settings are where they belong
    streamed = [s.transport for s in symbols if not routes[s.symbol].routed]
    if not streamed:
        return "polling"
    if all(t == "websocket" for t in streamed):
        return "streaming"
    if any(shard.connects == 0 for shard in record.shards):
        return "connecting"
    if any(not shard.live for shard in record.shards):
        return "degraded"  # reconnecting: its symbols are polled meanwhile
    return "recovering"  # make-before-break: polled until the WebSocket has proven each symbol


#: `adapter_status_async` lets the loop run between chunks of this many symbols.
CHUNK = 50


def adapter_status(record: FeedRecord) -> AdapterStatus:
    """The feed's status, built in one go (call on the feed's loop)."""
    *_, status = _build(record)
    assert status is not None
    return status


async def adapter_status_async(record: FeedRecord) -> AdapterStatus:
    """The same, letting the feed's loop run between chunks of `CHUNK` symbols, so a status
    page over thousands of symbols never holds up the ticks for long."""
    for step in _build(record):
        if step is not None:
            return step
        await asyncio.sleep(0)
    raise AssertionError("_build ends with the status")


def _build(record: FeedRecord) -> Iterator[AdapterStatus | None]:
    """Yields None between chunks of symbols, then the status."""
    metrics = record.metrics
    now = record.now
    now_ns = time.time_ns()
    offset = metrics.clock_offset.offset
    uncertainty = metrics.clock_offset.uncertainty
    per_symbol = record.per_symbol
    symbols: list[SymbolStatus] = []
    windows: dict[str, list[float]] = {}
    # the pooled percentiles need at most POOL_SAMPLES in all: keep each symbol's window only
    # at the stride its share needs (one stride for all, so a busy symbol keeps its weight),
    # not every sample of every symbol until the end (2,000 symbols: 1.2 million floats, 20 MB
    # more RSS at each build)
    expected = sum(
        min(LATENCY_RING, metrics.symbol(symbol).rate(now) * LATENCY_WINDOW)
        for symbol in record.symbols
    )
    stride = max(1, math.ceil(expected / POOL_SAMPLES))
    for i, (symbol, route) in enumerate(sorted(record.symbols.items())):
        if i and i % CHUNK == 0:
            yield None
        m = metrics.symbol(symbol)
        window = m.window(now_ns)
        windows[symbol] = window[::stride] if stride > 1 else window
        counts = per_symbol.get(symbol)
        latency, corrected = latency_pair(window, offset)
        symbols.append(
            SymbolStatus(
                symbol=symbol,
                transport=route.transport,
                breaker=route.breaker,
                connection=route.connection,
                ticks=m.ticks,
                updates_per_second=round(m.rate(now), 3),
                last_update_age=round((now_ns - m.last_ns) / 1e9, 3) if m.last_ns else None,
                latency_ms=latency,
                latency_corrected_ms=corrected,
                dropped_duplicate=counts.duplicate if counts else 0,
                dropped_stale=counts.stale if counts else 0,
                stale_on_websocket=route.stale,
                reason=route.reason,
                resyncs=counts.resyncs if counts else 0,
            )
        )
    by_symbol = {s.symbol: s for s in symbols}

    def pooled(names: Iterable[str]) -> tuple[LatencyStats, LatencyStats | None]:
        return latency_pair(pool(windows[name] for name in names if name in windows), offset)

    connections = []
    for shard in record.shards:
        latency, corrected = pooled(shard.symbols)
        connections.append(
            ConnectionStatus(
                id=shard.id,
                symbols=len(shard.symbols),
                live=shard.live,
                breaker=shard.breaker.value,
                breaker_seconds_in_state=round(shard.breaker_seconds_in_state, 3),
                consecutive_failures=shard.consecutive_failures,
                uptime=round(now - shard.opened_at, 3) if shard.opened_at is not None else None,
                connects=shard.connects,
                reconnects=shard.reconnects,
                failures=dict(shard.failures),
                updates_per_second=round(
                    sum(by_symbol[s].updates_per_second for s in shard.symbols if s in by_symbol),
                    3,
                ),
                latency_ms=latency,
                latency_corrected_ms=corrected,
            )
        )
    clock = metrics.clock_offset
    counters = record.counters
    latency, latency_corrected = pooled(list(windows))
    sequenced = record.sequenced
    yield AdapterStatus(
        adapter=record.adapter,
        display_name=record.display_name,
        state=_state(record, symbols),
        ticks=sum(s.ticks for s in symbols),
        updates_per_second=round(sum(s.updates_per_second for s in symbols), 3),
        latency_ms=latency,
        latency_corrected_ms=latency_corrected,
        symbols={s.symbol: s for s in symbols},
        connections=connections,
        errors_per_minute=metrics.errors_per_minute(),
        errors_total=dict(counters.failures)
        | {
            "malformed": counters.malformed,
            "rejected": counters.rejected,
            "control_send_failed": counters.control_errors,
        },
        reconnects=sum(shard.reconnects for shard in record.shards),
        rotations=sum(shard.rotations for shard in record.shards),
        malformed_frames=counters.malformed,
        rejected_subscriptions=counters.rejected,
        stale_resubscribes=counters.stale_resubscribes,
        resyncs=counters.resyncs,
        dropped_duplicate=sequenced.duplicate,
        dropped_stale=sequenced.stale,
        consumer_dropped=record.consumer_dropped,
        consumer_errors=counters.consumer_errors,
        plugin_errors=counters.plugin_errors,
        http=record.http,
        clock=ClockStatus(
            offset_ms=round(offset * 1e3, 3) if offset is not None else None,
            uncertainty_ms=round(uncertainty * 1e3, 3) if uncertainty is not None else None,
            samples=clock.total,
            last_sync_age=round(time.time() - clock.last_sync, 3) if clock.last_sync else None,
        ),
        connect_budgets=record.connect_budgets,
        refused=dict(record.refused),
        recent_changes=list(record.changes),
        sinks=list(record.sinks),
        shard=record.shard,
    )
