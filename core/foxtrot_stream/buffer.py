"""A bounded hand-off between the feed and a consumer slower than the market.

The feed's loop must never wait for a consumer (a slow one would stall the network reads and
let latency grow without bound), and memory must not grow behind one either. So a buffered
consumer gets at most one pending tick per symbol: a newer quote supersedes an older one, and
every superseded tick is counted as dropped. Memory is bounded by the number of symbols, and the
consumer always receives the newest quote of each symbol, in order, never an older after a newer.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

from foxtrot_stream.model import Tick

SlowConsumer = Callable[[Tick], Awaitable[None] | None]


class LatestPerSymbol:
    """The one conflating queue (pure; the caller synchronises): at most one pending tick per
    symbol, a newer quote replacing the older in place, symbols served in the order of their
    oldest undelivered update (so a busy symbol is never starved). With `maxsize`, a new
    symbol beyond it pushes out the symbol waiting longest. `put` says whether a tick was
    dropped (superseded or pushed out)."""

    __slots__ = ("_pending", "maxsize")

    def __init__(self, maxsize: int | None = None) -> None:
        self._pending: dict[str, Tick] = {}
        self.maxsize = maxsize

    def put(self, tick: Tick) -> bool:
        pending = self._pending
        symbol = tick.symbol
        if symbol in pending:
            pending[symbol] = tick  # keeps its place
            return True
        dropped = False
        if self.maxsize is not None and len(pending) >= self.maxsize:
            del pending[next(iter(pending))]
            dropped = True
        pending[symbol] = tick
        return dropped

    def pop(self) -> Tick:
        """The tick of the symbol waiting longest (KeyError if empty)."""
        pending = self._pending
        return pending.pop(next(iter(pending)))

    def __len__(self) -> int:
        return len(self._pending)

    def __bool__(self) -> bool:
        return bool(self._pending)


class ConflatingBuffer:
    """Policy `drop-oldest-per-symbol`. Call `put` from the feed; run `run()` as a task."""

    policy = "drop-oldest-per-symbol"

    def __init__(self, consumer: SlowConsumer) -> None:
        self.consumer = consumer
        self._pending = LatestPerSymbol()
        self._ready = asyncio.Event()
        self.received = 0
        self.dropped = 0
        self.delivered = 0
        self.errors = 0
        self.high_water = 0

    def put(self, tick: Tick) -> None:
        self.received += 1
        pending = self._pending
        if pending.put(tick):
            self.dropped += 1
        if len(pending) > self.high_water:
            self.high_water = len(pending)
        self._ready.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def run(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._pending:
                await self._deliver_next()
                await asyncio.sleep(0)  # let the feed run between two (slow) consumer calls

    async def drain(self) -> None:
        """Deliver what is pending (on shutdown: what was received is not lost)."""
        while self._pending:
            await self._deliver_next()

    async def _deliver_next(self) -> None:
        tick = self._pending.pop()
        self.delivered += 1  # handed over (received = delivered + dropped + pending)
        try:
            result = self.consumer(tick)
            if inspect.isawaitable(result):
                await result
        except Exception:
            self.errors += 1
