"""A feed's state as typed records (attrs) and as plain data (cattrs): what `status()` returns.

Built on demand from the feed's counters and `FeedMetrics`; nothing here runs per tick.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import attrs
import cattrs

from foxtrot_stream.breaker import BreakerState
from foxtrot_stream.metrics import LatencyStats, latency_pair, pool
from foxtrot_stream.records import StateChange

if TYPE_CHECKING:
    from foxtrot_stream.feed import Feed

_converter = cattrs.Converter()


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


def to_plain(record: Any) -> Any:
    """attrs records → dicts, lists and scalars (JSON-safe)."""
    return _converter.unstructure(record)


def _state(feed: Feed, symbols: list[SymbolStatus]) -> str:
    if feed.stopped:
        return "stopped"
    states = {shard.breaker.state for shard in feed.shards}
    if BreakerState.EXHAUSTED in states:
        return "exhausted"
    if states - {BreakerState.CLOSED} or feed.stale_polled:
        return "degraded"
    if not symbols:
        return "connecting"
    # symbols routed to HTTP by the settings are where they belong
    streamed = [s.transport for s in symbols if feed.symbols.get(s.symbol) is None]
    if not streamed:
        return "polling"
    if all(t == "websocket" for t in streamed):
        return "streaming"
    if "http" in streamed:
        return "recovering"  # make-before-break: back on WebSocket once it delivers each symbol
    return "connecting"


#: `adapter_status_async` lets the loop run between chunks of this many symbols.
CHUNK = 50


def adapter_status(feed: Feed) -> AdapterStatus:
    """The feed's status, built in one go (call on the feed's loop)."""
    *_, status = _build(feed)
    assert status is not None
    return status


async def adapter_status_async(feed: Feed) -> AdapterStatus:
    """The same, letting the feed's loop run between chunks of `CHUNK` symbols, so a status
    page over thousands of symbols never holds up the ticks for long."""
    for step in _build(feed):
        if step is not None:
            return step
        await asyncio.sleep(0)
    raise AssertionError("_build ends with the status")


def _build(feed: Feed) -> Iterator[AdapterStatus | None]:
    """Yields None between chunks of symbols, then the status."""
    metrics = feed.metrics
    now = feed.clock()
    now_ns = time.time_ns()
    offset = metrics.clock_offset.offset
    uncertainty = metrics.clock_offset.uncertainty
    shard_of = {symbol: shard for shard in feed.shards for symbol in shard.symbols}
    transports = feed.transports()
    per_symbol = feed.sequencer.per_symbol
    symbols: list[SymbolStatus] = []
    windows: dict[str, list[float]] = {}
    for i, symbol in enumerate(sorted(feed.symbols)):
        if i and i % CHUNK == 0:
            yield None
            if symbol not in feed.symbols:
                continue  # unsubscribed meanwhile
        m = metrics.symbol(symbol)
        transport = transports.get(symbol)
        shard = shard_of.get(symbol)
        window = windows[symbol] = m.window(now_ns)
        counts = per_symbol.get(symbol)
        latency, corrected = latency_pair(window, offset)
        symbols.append(
            SymbolStatus(
                symbol=symbol,
                transport=transport.value if transport is not None else "connecting",
                breaker=shard.breaker.state.value if shard is not None else "—",
                connection=shard.id if shard is not None else None,
                ticks=m.ticks,
                updates_per_second=round(m.rate(now), 3),
                last_update_age=round((now_ns - m.last_ns) / 1e9, 3) if m.last_ns else None,
                latency_ms=latency,
                latency_corrected_ms=corrected,
                dropped_duplicate=counts.duplicate if counts else 0,
                dropped_stale=counts.stale if counts else 0,
                stale_on_websocket=symbol in feed.stale_polled,
            )
        )
    by_symbol = {s.symbol: s for s in symbols}

    def pooled(names: list[str]) -> tuple[LatencyStats, LatencyStats | None]:
        return latency_pair(pool(windows[name] for name in names if name in windows), offset)

    shard_latency = {shard.id: pooled(shard.symbols) for shard in feed.shards}
    connections = [
        ConnectionStatus(
            id=shard.id,
            symbols=len(shard.symbols),
            live=shard.live,
            breaker=shard.breaker.state.value,
            breaker_seconds_in_state=round(shard.breaker.time_in_state(), 3),
            consecutive_failures=shard.breaker.consecutive_failures,
            uptime=round(now - shard.opened_at, 3) if shard.opened_at is not None else None,
            connects=shard.connects,
            reconnects=shard.reconnects,
            failures=dict(shard.failures),
            updates_per_second=round(
                sum(by_symbol[s].updates_per_second for s in shard.symbols if s in by_symbol), 3
            ),
            latency_ms=shard_latency[shard.id][0],
            latency_corrected_ms=shard_latency[shard.id][1],
        )
        for shard in feed.shards
    ]
    poller = feed.poller
    http = HttpStatus(
        symbols=sorted(poller.symbols) if poller is not None else [],
        polls=getattr(poller, "polls", 0),
        failed_polls=getattr(poller, "failed_polls", 0),
        rate_limited=getattr(poller, "rate_limited", 0),
        rate_limit_wait_seconds=float(getattr(poller, "rate_limit_wait", 0.0)),
        weight_holds=getattr(poller, "weight_holds", 0),
        used_weight=getattr(poller, "used_weight", None),
    )
    clock = metrics.clock_offset
    counters = feed.counters
    latency, latency_corrected = pooled(list(windows))
    sequenced = feed.sequencer.counts
    yield AdapterStatus(
        adapter=feed.name,
        display_name=feed.display,
        state=_state(feed, symbols),
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
        reconnects=counters.reconnects,
        rotations=counters.rotations,
        malformed_frames=counters.malformed,
        rejected_subscriptions=counters.rejected,
        stale_resubscribes=counters.stale_resubscribes,
        dropped_duplicate=sequenced.duplicate,
        dropped_stale=sequenced.stale,
        consumer_dropped=sum(b.dropped for b in feed.buffers),
        consumer_errors=counters.consumer_errors,
        plugin_errors=counters.plugin_errors,
        http=http,
        clock=ClockStatus(
            offset_ms=round(offset * 1e3, 3) if offset is not None else None,
            uncertainty_ms=round(uncertainty * 1e3, 3) if uncertainty is not None else None,
            samples=clock.total,
            last_sync_age=round(time.time() - clock.last_sync, 3) if clock.last_sync else None,
        ),
        connect_budgets=[
            ConnectBudgetStatus(host, b.attempts, b.waits, round(b.waited, 3))
            for host, b in sorted(feed.connect_budgets.items())
        ],
        refused=dict(feed.refused),
        recent_changes=list(feed.changes),
    )
