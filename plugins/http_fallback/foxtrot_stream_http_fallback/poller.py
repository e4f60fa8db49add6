"""HTTP polling of an adapter's REST endpoint, for symbols the WebSocket does not serve.

One poller per feed polls all its symbols together (one request for many symbols where the
adapter allows), one request every `http_fallback.interval` seconds at most, however often
symbols come and go: a symbol handed over is in the next request, which starts at once if the
poller was idle for an interval and otherwise one interval after the previous one, so its
first polled quote arrives within an interval plus one answer.
The exchange's rate-limit answers are obeyed: a 429 or 418 holds every REST request of the
feed (`FeedContext.rest_hold`, shared with the clock sync) until its `Retry-After` has passed,
and a symbol the exchange refuses is reported once and dropped. Time is the feed's clock
(`FeedContext.clock`), so a simulation can run it on virtual time.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence

from foxtrot_stream.contract.records import FeedContext, PollError, PollResult, RestHold

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
        self.rest_hold = context.rest_hold or RestHold(context.clock)
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
        clock = self.context.clock
        last = -math.inf
        while not self._closed:
            if not self._symbols:
                self._wake.clear()
                await self._sleep(None)
                continue
            # requests stay an interval apart (and none while the exchange holds us off);
            # a wake-up (symbols added, close) only makes this check again
            wait = max(self.rest_hold.remaining(), last + self.interval - clock())
            if wait > 0:
                self._wake.clear()
                await self._sleep(wait)
                continue
            last = clock()
            result = await self._poll_once()
            if result is not None and result.retry_after:
                self._hold(result)
            elif result is not None:
                self._pace(result)

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
        what = "IP banned (HTTP 418)" if result.banned else "rate limited (HTTP 429)"
        self.rest_hold.hold(result.retry_after, what)
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
        self.rest_hold.hold(wait, "request weight near the limit")
        self.error_log.warning(
            "HTTP polling used %d of %d request weight this minute: pausing %.0fs "
            "until the next minute",
            used,
            limit,
            wait,
        )

    async def _sleep(self, seconds: float | None) -> None:
        """Sleep, but wake early when symbols are handed over or the poller closes."""
        if seconds is not None and seconds <= 0:
            return
        try:
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        except TimeoutError:
            pass
