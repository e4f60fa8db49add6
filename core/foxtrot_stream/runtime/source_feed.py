"""`SourceFeed`: an adapter's ticks read from a `Source` (a Redis stream a feed elsewhere
publishes to) instead of its exchange, behind the interface a host's `StreamEngine` drives.

It runs the source's `ticks()` on the loop and hands each tick to its consumers, in the
source's order (each symbol's as the publishing feed delivered it, already sequenced there).
Per tick: the consumers' calls, two counters (all, the symbol's) and the symbol's last tick,
and for a tick with an exchange time a latency sample into the symbol's ring, as the feed
keeps one (exchange event → the publishing feed's receipt: the same figure its /status shows;
the hop from there to here is the source's `lag_ms`); nothing logged, nothing allocated.
There is no connection, breaker or poller of its own: the source reconnects by itself, and
its `health()` is the status.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from foxtrot_stream.config.settings import Settings
from foxtrot_stream.contract.model import Tick
from foxtrot_stream.contract.records import (
    Instrument,
    InstrumentSource,
    Source,
    SourceRequest,
    SourceSpec,
)
from foxtrot_stream.runtime.metrics import FeedMetrics, LatencyStats, latency_stats, pool
from foxtrot_stream.runtime.status import (
    AdapterStatus,
    ClockStatus,
    HttpStatus,
    SymbolStatus,
    to_plain,
)

Consumer = Callable[[Tick], object]
#: How long `stop` waits for a cancelled source to end, before and after closing it (seconds).
STOP_GRACE = 2.0


class SourceFeed:
    """The ticks of `adapter` from the source `spec` builds with `plugin_settings`."""

    def __init__(
        self,
        spec: SourceSpec,
        plugin_settings: Any,
        settings: Settings,
        adapter: str,
        display_name: str = "",
        request: SourceRequest | None = None,
    ) -> None:
        """`request`: what the caller overrides in the source's settings (url, start, group,
        consumer: `foxtrot-stream tail`'s arguments); its symbols are `start`'s."""
        self.spec = spec
        self.plugin_settings = plugin_settings
        self.settings = settings
        self.name = adapter
        self.display_name = display_name or adapter
        self.request = request or SourceRequest(adapter)
        self.log = logging.getLogger(self.display_name)
        self.consumers: list[Consumer] = []
        self.source: Source | None = None
        self.delivered = 0
        self.consumer_errors = 0
        self.refused: dict[str, str] = {}
        self._counts: dict[str, int] = {}
        self._last: dict[str, Tick] = {}
        self.metrics = FeedMetrics(lambda symbol: (self._counts.get(symbol, 0), 0))
        """The latency rings, per symbol (only they are used: counts are `_counts`)."""
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self.failed: str | None = None
        """Why the source's `ticks()` ended (it must not: a source retries by itself)."""
        self._started_at = time.monotonic()
        self._rate: tuple[float, int] = (self._started_at, 0)

    # --- the feed interface the engine drives ----------------------------------------------

    def add_consumer(self, consumer: Consumer) -> None:
        self.consumers.append(consumer)

    @property
    def symbols(self) -> frozenset[str]:
        return self.source.symbols if self.source is not None else frozenset()

    async def start(self, symbols: Iterable[str] = ()) -> None:
        request = attrs.evolve(self.request, symbols=tuple(s.upper() for s in symbols))
        self.source = self.spec.factory(self.plugin_settings, request)
        self._task = asyncio.create_task(self._run(self.source), name=f"{self.name}-source")
        if self.request.url is None:  # a host's feed, by its settings (not `tail`)
            self.log.info(
                "reading ticks from the %s source, not from the exchange (%s.consume is true)",
                self.spec.name,
                self.spec.key,
            )

    async def subscribe(self, symbols: Iterable[str]) -> dict[str, str]:
        """Read these symbols too; none is refused (nothing here knows the exchange's list)."""
        assert self.source is not None, "start() first"
        self.source.add([s.upper() for s in symbols])
        return {}

    async def unsubscribe(self, symbols: Iterable[str]) -> None:
        gone = [s.upper() for s in symbols]
        for symbol in gone:
            self.metrics.forget(symbol)
        if self.source is not None:
            self.source.remove(gone)

    async def instruments(self) -> tuple[Instrument, ...]:
        """The list the publishing feeds left with the source (`InstrumentSource`); TypeError
        if the source cannot carry one, LookupError if none was published."""
        if not isinstance(self.source, InstrumentSource):
            raise TypeError(
                f"{self.name} reads from the {self.spec.name} source ({self.spec.key}.consume):"
                " it has no instrument list"
            )
        return tuple(await self.source.instruments())

    def reset(self, connection: int | None = None) -> int:
        """No breaker to reset: the source reconnects by itself."""
        return 0

    async def stop(self) -> None:
        self._stopped = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # a source must end on cancellation; one that does not (a read in a client
            # library that loses it) is not waited for longer than STOP_GRACE: closing the
            # source then ends its reads
            await asyncio.wait({task}, timeout=STOP_GRACE)
        if self.source is not None:
            await self.source.aclose()
        if task is not None:
            if not task.done():
                await asyncio.wait({task}, timeout=STOP_GRACE)
            if not task.done():
                self.log.warning(
                    "the %s source did not stop within %gs", self.spec.name, 2 * STOP_GRACE
                )

    # --- delivery --------------------------------------------------------------------------

    async def _run(self, source: Source) -> None:
        consumers = self.consumers  # the list object: consumers added later are seen
        counts, last, record = self._counts, self._last, self.metrics.record
        try:
            async for tick in source.ticks():
                self.delivered += 1
                symbol = tick.symbol
                counts[symbol] = counts.get(symbol, 0) + 1
                last[symbol] = tick
                if tick.exchange_ts is not None:
                    record(tick)
                for consumer in consumers:
                    try:
                        consumer(tick)
                    except Exception:
                        self.consumer_errors += 1
                        if self.consumer_errors == 1:  # once: a failing consumer must not flood
                            self.log.exception("a consumer raised; it keeps receiving")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failed = f"{type(exc).__name__}: {exc}"
            self.log.exception("the %s source failed; no more ticks", self.spec.name)

    # --- status ----------------------------------------------------------------------------

    def status_record(self) -> AdapterStatus:
        now, now_ns = time.monotonic(), time.time_ns()
        since, before = self._rate
        rate = (self.delivered - before) / max(now - since, 1e-9)
        self._rate = (now, self.delivered)
        health = dict(self.source.health()) if self.source is not None else {}
        newest = max((t.received_ts for t in self._last.values()), default=None)
        health["lag_ms"] = None if newest is None else round((now_ns - newest) / 1e6, 1)
        connected = bool(health.get("connected"))
        if self.failed is not None:
            health["failed"] = self.failed
        state = (
            "stopped"
            if self._stopped
            else "failed"
            if self.failed is not None
            else "streaming"
            if connected
            else "connecting"
        )
        none = LatencyStats()
        symbols = {}
        rings = self.metrics.symbols
        windows = {s: rings[s].window(now_ns) for s in self.symbols if s in rings}
        for symbol in sorted(self.symbols):
            tick = self._last.get(symbol)
            window = windows.get(symbol)
            symbols[symbol] = SymbolStatus(
                symbol=symbol,
                transport=self.spec.name,
                breaker="—",
                connection=None,
                ticks=self._counts.get(symbol, 0),
                updates_per_second=self._counts.get(symbol, 0) / max(now - self._started_at, 1e-9),
                last_update_age=None if tick is None else (now_ns - tick.received_ts) / 1e9,
                latency_ms=latency_stats(window) if window else none,
                latency_corrected_ms=None,
                dropped_duplicate=0,
                dropped_stale=0,
                stale_on_websocket=False,
                reason=f"read from the {self.spec.name} source",
                resyncs=0,
            )
        errors = int(health.get("errors", 0))
        return AdapterStatus(
            adapter=self.name,
            display_name=self.display_name,
            state=state,
            ticks=self.delivered,
            updates_per_second=rate,
            latency_ms=latency_stats(pool(windows.values())) if windows else none,
            latency_corrected_ms=None,
            symbols=symbols,
            connections=[],
            errors_per_minute={},
            errors_total={"source": errors} if errors else {},
            reconnects=int(health.get("reconnects", 0)),
            rotations=0,
            malformed_frames=0,
            rejected_subscriptions=0,
            stale_resubscribes=0,
            resyncs=0,
            dropped_duplicate=0,
            dropped_stale=0,
            consumer_dropped=0,
            consumer_errors=self.consumer_errors,
            plugin_errors=0,
            http=HttpStatus([], 0, 0, 0, 0.0, 0, None, 0.0),
            clock=ClockStatus(None, None, 0, None),
            connect_budgets=[],
            refused={},
            recent_changes=[],
            source=health,
        )

    def status(self) -> dict[str, Any]:
        plain: dict[str, Any] = to_plain(self.status_record())
        return plain

    async def status_async(self) -> dict[str, Any]:
        return self.status()
