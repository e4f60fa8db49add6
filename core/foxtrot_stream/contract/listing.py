"""`Listing`: what an exchange lists, fetched once for everyone who needs it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Listing(Generic[T]):
    """A value an adapter fetches from the exchange now and then (its symbols, its instruments,
    its rate limits), kept `ttl` seconds.

    `await listing.get(fetch)` answers from what it holds while that is fresh; otherwise it
    calls `fetch()`, and every caller that comes meanwhile shares that one request rather than
    sending its own (at start, `run --all` with a sink lists the symbols and hands the
    instruments to the sinks at once: two requests of one of the heaviest endpoints, where one
    does). A caller that is cancelled does not cancel the request for the others, and its result
    is still kept. A failed request fails the callers waiting for it and is not kept: the next
    `get` asks again. `refresh=True` asks again even if the value is fresh (or joins a request
    already on its way).

    Used on one event loop at a time, like the adapter that holds it."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not ttl > 0:
            raise ValueError(f"ttl must be > 0 seconds, got {ttl!r}")
        self.ttl = ttl
        self._clock = clock
        self.value: T | None = None
        """The last value fetched, None before the first."""
        self.fetched_at = -float("inf")
        """`clock()` when the request that brought `value` was sent."""
        self._pending: asyncio.Future[T] | None = None

    async def get(self, fetch: Callable[[], Awaitable[T]], *, refresh: bool = False) -> T:
        value = self.value
        if value is not None and not refresh and self._clock() - self.fetched_at < self.ttl:
            return value
        pending = self._pending
        if (
            pending is None
            or pending.done()
            or pending.get_loop() is not asyncio.get_running_loop()
        ):
            pending = self._pending = asyncio.ensure_future(self._fetch(fetch))
            # its error belongs to its callers: not a "never retrieved" warning if they are gone
            pending.add_done_callback(lambda f: f.cancelled() or f.exception())
        return await asyncio.shield(pending)

    async def _fetch(self, fetch: Callable[[], Awaitable[T]]) -> T:
        sent = self._clock()
        value = await fetch()
        self.value, self.fetched_at = value, sent
        return value
