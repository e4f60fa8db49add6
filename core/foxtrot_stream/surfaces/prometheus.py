"""`/metrics` in the Prometheus text format, built at scrape time from the feeds' state.

A custom collector: nothing is recorded twice and nothing runs per tick; a scrape reads the
counters the feeds keep anyway. Names carry their unit (`_seconds`, `_total`); labels are
`adapter`, `symbol`, `connection`, `kind`, `state`, `host`, and `quantile` on the one summary.
Latency is raw (not corrected for the clock offset, which is its own gauge): a histogram of
every sample, and a summary whose quantiles cover the last minute.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from foxtrot_stream.policy.breaker import BreakerState
from foxtrot_stream.runtime.metrics import LATENCY_BUCKETS
from foxtrot_stream.runtime.status import AdapterStatus, adapter_status_async

if TYPE_CHECKING:
    from foxtrot_stream.runtime.feed import Feed
    from foxtrot_stream.runtime.source_feed import SourceFeed

PREFIX = "foxtrot_stream"
ADAPTER_STATES = ("streaming", "connecting", "degraded", "recovering", "exhausted", "polling",
                  "stopped")  # fmt: skip
TRANSPORTS = ("websocket", "http", "connecting")
#: metric name → the `Sink.health()` key it reads
SINK_KEYS = {
    "written_ticks": "written",
    "dropped_ticks": "dropped",
    "duplicate_ticks": "duplicates",
    "reconnects": "reconnects",
    "errors": "errors",
}


def _counter(name: str, doc: str, labels: Sequence[str]) -> CounterMetricFamily:
    return CounterMetricFamily(f"{PREFIX}_{name}", doc, labels=labels)


def _gauge(name: str, doc: str, labels: Sequence[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=labels)


class FeedCollector(Collector):
    """Collects every metric of the feeds `feeds()` returns (called on their event loop)."""

    def __init__(self, feeds: Sequence[tuple[Feed, AdapterStatus]]) -> None:
        self.feeds = feeds
        """Each feed with its status, built beforehand (see `exposition`)."""

    def collect(self) -> Iterator[Metric]:
        a, s = ("adapter",), ("adapter", "symbol")
        c = ("adapter", "connection")
        ticks = _counter("ticks", "Ticks delivered to consumers", s)
        rate = _gauge("updates_per_second", "Ticks per second over the last 10 s", s)
        age = _gauge("last_update_age_seconds", "Seconds since the symbol's last tick", s)
        latency = HistogramMetricFamily(
            f"{PREFIX}_tick_latency_seconds",
            "Exchange event time to local receipt (raw: not corrected for clock offset)",
            labels=s,
        )
        window = SummaryMetricFamily(
            f"{PREFIX}_tick_latency_window_seconds",
            "Raw latency quantiles over the last minute (max: quantile 1); _sum and _count "
            "since the symbol's first sample, as the histogram's",
            labels=s,
        )
        dropped = _counter(
            "dropped_ticks", "Ticks not delivered: duplicate or older than one already seen",
            ("adapter", "symbol", "reason"),
        )  # fmt: skip
        transport = _gauge(
            "symbol_transport", "1 for the transport serving the symbol now",
            ("adapter", "symbol", "transport"),
        )  # fmt: skip
        state = _gauge("adapter_state", "1 for the adapter's current state", ("adapter", "state"))
        up = _gauge("connection_up", "1 while the connection delivers data", c)
        uptime = _gauge(
            "connection_uptime_seconds", "Seconds since the connection's last (re)connect", c
        )
        connects = _counter("connects", "WebSocket connections opened", c)
        reconnects = _counter("reconnects", "Reconnection attempts scheduled by the backoff", c)
        breaker = _gauge(
            "breaker_state", "1 for the circuit breaker's current state", (*c, "state")
        )
        in_state = _gauge(
            "breaker_state_seconds", "Seconds the circuit breaker has been in its state", c
        )
        errors = _counter("errors", "Failures by kind", ("adapter", "kind"))
        per_minute = _gauge("errors_last_minute", "Failures in the last 60 s", ("adapter", "kind"))
        malformed = _counter("malformed_frames", "Frames that could not be decoded", a)
        polls = _counter("http_polls", "HTTP polls sent", a)
        failed = _counter("http_poll_failures", "HTTP polls that failed", a)
        limited = _counter("rate_limit_waits", "HTTP 429/418 answers obeyed", a)
        limited_s = _counter("rate_limit_wait_seconds", "Seconds spent waiting on Retry-After", a)
        weight = _counter("weight_holds", "Polls held back for the request-weight limit", a)
        consumer = _counter(
            "consumer_dropped_ticks", "Ticks superseded in slow consumers' buffers", a
        )
        offset = _gauge("clock_offset_seconds", "Exchange clock minus local clock (estimate)", a)
        offset_err = _gauge(
            "clock_offset_uncertainty_seconds", "Half the fastest round trip of the estimate", a
        )
        attempts = _counter("connect_attempts", "WebSocket connection attempts per host", ("host",))
        budget_waits = _counter(
            "connect_budget_waits", "Connection attempts delayed by the budget", ("host",)
        )
        budget_s = _counter(
            "connect_budget_wait_seconds", "Seconds connection attempts waited", ("host",)
        )
        k = ("adapter", "sink")
        sink_up = _gauge("sink_connected", "1 while the sink reaches its destination", k)
        sink_queued = _gauge("sink_queued_ticks", "Ticks buffered in the sink, not yet written", k)
        sink_counts = {
            key: _counter(f"sink_{key}", doc, k)
            for key, doc in (
                ("written_ticks", "Ticks the sink wrote to its destination"),
                ("dropped_ticks", "Ticks the sink dropped (its buffer full, or stopped)"),
                ("duplicate_ticks", "Ticks the destination refused as already there"),
                ("reconnects", "Times the sink reached its destination again after losing it"),
                ("errors", "Failed writes (retried)"),
            )
        }
        hosts: dict[str, tuple[int, int, float]] = {}
        for feed, st in self.feeds:
            name = feed.name
            for symbol in st.symbols.values():
                labels = [name, symbol.symbol]
                ticks.add_metric(labels, symbol.ticks)
                rate.add_metric(labels, symbol.updates_per_second)
                if symbol.last_update_age is not None:
                    age.add_metric(labels, symbol.last_update_age)
                m = feed.metrics.symbol(symbol.symbol)
                m.fold()
                buckets = [(str(b), m.buckets[i]) for i, b in enumerate(LATENCY_BUCKETS)]
                buckets.append(("+Inf", m.buckets[-1]))
                latency.add_metric(labels, buckets, m.lat_sum)
                stats = symbol.latency_ms
                if stats is not None and stats.samples:
                    for q, value in (("0.5", stats.p50), ("0.95", stats.p95),
                                     ("0.99", stats.p99), ("1", stats.max)):  # fmt: skip
                        if value is not None:
                            window.add_sample(
                                window.name, {"adapter": name, "symbol": symbol.symbol,
                                              "quantile": q}, value / 1e3,
                            )  # fmt: skip
                window.add_metric(labels, m.buckets[-1], m.lat_sum)
                dropped.add_metric([*labels, "duplicate"], symbol.dropped_duplicate)
                dropped.add_metric([*labels, "stale"], symbol.dropped_stale)
                for kind in TRANSPORTS:
                    transport.add_metric([*labels, kind], float(symbol.transport == kind))
            for each in ADAPTER_STATES:
                state.add_metric([name, each], float(st.state == each))
            for conn in st.connections:
                labels = [name, str(conn.id)]
                up.add_metric(labels, float(conn.live))
                if conn.uptime is not None:
                    uptime.add_metric(labels, conn.uptime)
                connects.add_metric(labels, conn.connects)
                reconnects.add_metric(labels, conn.reconnects)
                in_state.add_metric(labels, conn.breaker_seconds_in_state)
                for kind in (b.value for b in BreakerState):
                    breaker.add_metric([*labels, kind], float(conn.breaker == kind))
            for kind, count in sorted(st.errors_total.items()):
                errors.add_metric([name, kind], count)
                per_minute.add_metric([name, kind], st.errors_per_minute.get(kind, 0))
            malformed.add_metric([name], st.malformed_frames)
            polls.add_metric([name], st.http.polls)
            failed.add_metric([name], st.http.failed_polls)
            limited.add_metric([name], st.http.rate_limited)
            limited_s.add_metric([name], st.http.rate_limit_wait_seconds)
            weight.add_metric([name], st.http.weight_holds)
            consumer.add_metric([name], st.consumer_dropped)
            if st.clock.offset_ms is not None and st.clock.uncertainty_ms is not None:
                offset.add_metric([name], st.clock.offset_ms / 1e3)
                offset_err.add_metric([name], st.clock.uncertainty_ms / 1e3)
            for health in st.sinks:
                labels = [name, str(health.get("name", "?"))]
                sink_up.add_metric(labels, float(bool(health.get("connected"))))
                sink_queued.add_metric(labels, float(health.get("queued", 0)))
                for key, family in sink_counts.items():
                    family.add_metric(labels, float(health.get(SINK_KEYS[key], 0)))
            for budget in st.connect_budgets:
                hosts[budget.host] = (budget.attempts, budget.waits, budget.waited_seconds)
        for host, (n, waits, waited) in sorted(hosts.items()):
            attempts.add_metric([host], n)
            budget_waits.add_metric([host], waits)
            budget_s.add_metric([host], waited)
        yield from (ticks, rate, age, latency, window, dropped, transport, state, up, uptime)
        yield from (connects, reconnects, breaker, in_state, errors, per_minute, malformed)
        yield from (polls, failed, limited, limited_s, weight, consumer, offset, offset_err)
        yield from (attempts, budget_waits, budget_s, sink_up, sink_queued)
        yield from sink_counts.values()


class SourceCollector(Collector):
    """The adapters read from a source (``<key>.consume``): what their sources report."""

    def __init__(self, statuses: Sequence[AdapterStatus]) -> None:
        self.statuses = statuses

    def collect(self) -> Iterator[Metric]:
        k = ("adapter", "source")
        up = _gauge("source_connected", "1 while the source reads from its origin", k)
        lag = _gauge("source_lag_seconds", "Now minus the newest tick's received_ts", k)
        ticks = _counter("source_read_ticks", "Ticks the source read and handed on", k)
        counts = {
            key: _counter(f"source_{key}", doc, k)
            for key, doc in (
                ("reconnects", "Times the source reached its origin again after losing it"),
                ("errors", "Reads of the source that failed"),
                ("malformed_entries", "Entries the source skipped: not ticks"),
            )
        }
        for st in self.statuses:
            health = st.source or {}
            labels = [st.adapter, str(health.get("name", ""))]
            up.add_metric(labels, float(bool(health.get("connected"))))
            if health.get("lag_ms") is not None:
                lag.add_metric(labels, float(health["lag_ms"]) / 1000)
            ticks.add_metric(labels, float(st.ticks))
            counts["reconnects"].add_metric(labels, float(health.get("reconnects", 0)))
            counts["errors"].add_metric(labels, float(health.get("errors", 0)))
            counts["malformed_entries"].add_metric(labels, float(health.get("malformed", 0)))
        yield from (up, lag, ticks, *counts.values())


async def exposition(feeds: Sequence[Feed | SourceFeed]) -> bytes:
    """The text format for one scrape (statuses built letting the loop run in between)."""
    from foxtrot_stream.runtime.source_feed import SourceFeed

    registry = CollectorRegistry(auto_describe=False)
    exchange = [f for f in feeds if not isinstance(f, SourceFeed)]
    sourced = [f.status_record() for f in feeds if isinstance(f, SourceFeed)]
    registry.register(
        FeedCollector([(f, await adapter_status_async(f.record())) for f in exchange])
    )
    if sourced:
        registry.register(SourceCollector(sourced))
    return generate_latest(registry)
