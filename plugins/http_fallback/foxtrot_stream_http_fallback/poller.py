"""HTTP polling of an adapter's REST endpoint, for symbols the WebSocket does not serve.

One poller per feed polls all its symbols together (one request for many symbols where the
adapter allows) every `http_fallback.interval` seconds. Symbols handed over while it waits are
polled at once, so the first polled quote arrives within one interval of a breaker opening.
The exchange's rate-limit answers are obeyed: a 429 or 418 holds every poll until its
`Retry-After` has passed, and a symbol the exchange refuses is reported once and dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from foxtrot_stream.records import FeedContext, PollError, PollResult

#: Share of the exchange's weight allowance after which polling waits for the next minute.
WEIGHT_HEADROOM = 0.9


class HttpPoller:
    def __init__(self, context: FeedContext, symbols: Sequence[str], interval: float) -> None:
        self.context = context
        self.interval = interval
        display = context.display_name or context.adapter.display_name
        self.log = logging.getLogger(display)
        self.error_log = logging.getLogger(f"{display}Error")
        self._symbols: set[str] = set(symbols)
        self._wake = asyncio.Event()
        self._closed = False
        self._hold_until = 0.0
        self._failing = False
        self.polls = 0
        self.failed_polls = 0
        self.rate_limited = 0
        self.rate_limit_wait = 0.0
        self.weight_holds = 0
        self.used_weight: int | None = None
        self.refused: dict[str, str] = {}

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset(self._symbols)

    def add(self, symbols: Sequence[str]) -> None:
        new = set(symbols) - self._symbols - set(self.refused)
        if new:
            self._symbols |= new
            self._wake.set()

    def remove(self, symbols: Sequence[str]) -> None:
        self._symbols -= set(symbols)

    async def close(self) -> None:
        self._closed = True
        self._wake.set()

    async def run(self) -> None:
        clock = time.monotonic
        while not self._closed:
            if not self._symbols:
                self._wake.clear()
                await self._sleep(None)
                continue
            wait = max(0.0, self._hold_until - clock())
            if wait > 0:
                await self._sleep(wait, wakeable=False)
                continue
            started = clock()
            self._wake.clear()  # symbols handed over from now on wake the next sleep
            result = await self._poll_once()
            if result is not None and result.retry_after:
                self._hold(result)
            elif result is not None:
                self._pace(result)
            elapsed = clock() - started
            await self._sleep(max(0.0, self.interval - elapsed))

    async def _poll_once(self) -> PollResult | None:
        batch = sorted(self._symbols)
        self.polls += 1
        try:
            result = await self.context.adapter.poll(self.context.session, batch)
        except PollError as exc:
            self.failed_polls += 1
            if not self._failing:  # once per streak of failures, not once per poll
                self.error_log.warning(
                    "HTTP poll failed: %s (retrying every %gs)", exc, self.interval
                )
                self._failing = True
            return None
        if self._failing:
            self.log.info("HTTP polling recovered")
            self._failing = False
        self.used_weight = result.used_weight
        sink = self.context.poll_sink
        wanted = self._symbols
        for tick in result.ticks:
            if tick.symbol in wanted:
                sink(tick, result.requested_ns)
        for symbol, error in result.invalid.items():
            if symbol not in self.refused:
                self.refused[symbol] = error
                self._symbols.discard(symbol)
                self.error_log.error("HTTP polling stopped for %s: %s", symbol, error)
        return result

    def _hold(self, result: PollResult) -> None:
        assert result.retry_after is not None
        self.rate_limited += 1
        self.rate_limit_wait += result.retry_after
        self._hold_until = time.monotonic() + result.retry_after
        what = "IP banned (HTTP 418)" if result.banned else "rate limited (HTTP 429)"
        self.error_log.warning(
            "HTTP polling %s: no request for %gs, as Retry-After asks", what, result.retry_after
        )

    def _pace(self, result: PollResult) -> None:
        """Near the exchange's weight allowance, wait for its minute to end rather than be
        refused (a 429 ignored long enough becomes an IP ban)."""
        used, limit = result.used_weight, result.weight_limit
        if used is None or not limit or used < WEIGHT_HEADROOM * limit:
            return
        wait = 60.0 - time.time() % 60.0 + 1.0  # the allowance is per calendar minute
        self.weight_holds += 1
        self._hold_until = time.monotonic() + wait
        self.error_log.warning(
            "HTTP polling used %d of %d request weight this minute: pausing %.0fs "
            "until the next minute",
            used,
            limit,
            wait,
        )

    async def _sleep(self, seconds: float | None, *, wakeable: bool = True) -> None:
        """Sleep, but wake early when symbols are handed over (unless rate-limited)."""
        if seconds is not None and seconds <= 0:
            return
        if not wakeable:
            await asyncio.sleep(seconds or 0)
            return
        try:
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        except TimeoutError:
            pass
