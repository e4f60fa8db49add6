"""Bounded hand-offs between the feed and a consumer slower than the market.

The feed's loop must never wait for a consumer (a slow one would stall the network reads and
let latency grow without bound), and memory must not grow behind one either. So a buffered
consumer gets at most one pending tick per symbol: a newer quote supersedes an older one, and
every superseded tick is counted as dropped. Memory is bounded by the number of symbols, and the
consumer always receives the newest quote of each symbol, in order, never an older after a newer.

`HandOff` is the engine's queue towards a consumer thread: lossless while the consumer keeps
up, conflating through the same `LatestPerSymbol` only once it is behind by more than a bound.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager
from operator import length_hint
from typing import Literal

from foxtrot_stream.contract.model import Tick

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

    def pop_all(self) -> list[Tick]:
        """Every pending tick, in the order `pop` would give them; leaves the queue empty."""
        ticks = list(self._pending.values())
        self._pending.clear()
        return ticks

    def __len__(self) -> int:
        return len(self._pending)

    def __bool__(self) -> bool:
        return bool(self._pending)


def _nothing() -> None:
    pass


class HandOff:
    """The queue between one producer thread and one consumer thread that takes ticks in
    batches: lossless while the consumer keeps up, conflating only once it is behind.

    `take` hands the consumer everything waiting as one batch (an iterator); a tick counts as
    delivered once the consumer has taken it from that iterator. `queued` is every tick put and
    not yet delivered: waiting, or still in the batch. With `policy`:

    * ``"conflate"``: ticks wait in arrival order, all of them, while at most `maxsize` are
      queued. A put that would leave more queued means the consumer is behind: the waiting
      ticks collapse into a `LatestPerSymbol` (the newest per symbol, each superseded tick
      dropped), and later ticks conflate into it until the consumer takes it as its next batch;
      then ticks wait in order again. While conflating, memory is one tick per symbol (at most
      `maxsize` symbols) besides the batch in hand.
    * ``"drop_oldest"``: ticks wait in arrival order; a put that would leave more than
      `maxsize` queued drops the oldest waiting tick.

    Per symbol, ticks reach the consumer in the order they were put, never an older after a
    newer, and every tick is accounted for: put = delivered + dropped + queued. After `close`,
    a put is dropped (nobody will take it).

    Threads: one producer calls `put`, one consumer calls `take` once it has gone through its
    previous batch. `put` appends without a lock (a deque's append is atomic, and only the
    producer appends) and takes `lock` only when the consumer is behind (or a cheap check says
    it may be); `take` holds it. Without a lock (`None`) the caller must not call both at once.
    `on_first` is called by `put` when a tick arrives with nothing else waiting (at most once
    per batch): the consumer's wake-up.
    """

    __slots__ = (
        "_closed",
        "_drop_oldest",
        "_fifo",
        "_hand",
        "_latest",
        "_limit",
        "_lock",
        "_slow",
        "dropped",
        "maxsize",
        "on_first",
        "taken",
    )

    def __init__(
        self,
        maxsize: int,
        policy: Literal["conflate", "drop_oldest"] = "conflate",
        lock: AbstractContextManager[object] | None = None,
        on_first: Callable[[], object] = _nothing,
    ) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize {maxsize!r}: expected an integer of at least 1")
        self.maxsize = maxsize
        self.on_first = on_first
        self._drop_oldest = policy == "drop_oldest"
        self._lock: AbstractContextManager[object] = (
            contextlib.nullcontext() if lock is None else lock
        )
        self._fifo: collections.deque[Tick] = collections.deque()
        self._latest = LatestPerSymbol(maxsize)
        self._hand: Iterator[Tick] = iter(())  # the batch being delivered
        # waiting ticks allowed before `put` looks closer: maxsize minus the batch in hand when
        # it was taken (the batch only shrinks, so this errs on the safe side)
        self._limit = maxsize
        self._slow = False  # conflating, or closed: `put` takes the lock
        self._closed = False
        self.taken = 0  # ticks handed over by `take`
        self.dropped = 0

    def put(self, tick: Tick) -> None:
        if self._slow:
            self._put_slow(tick)
            return
        fifo = self._fifo
        fifo.append(tick)  # nothing is conflating (only `put` starts that): in order
        n = len(fifo)
        if n == 1:
            self.on_first()
        if n > self._limit:
            self._over_limit()

    def _put_slow(self, tick: Tick) -> None:
        with self._lock:
            if self._closed:  # nobody will take it: counted, not lost silently
                self.dropped += 1
                return
            if self._latest:
                if self._latest.put(tick):
                    self.dropped += 1
                return
        self.put(tick)  # the consumer took the conflated batch meanwhile: in order again

    def _over_limit(self) -> None:
        with self._lock:
            fifo = self._fifo
            self._limit = self.maxsize - length_hint(self._hand)
            over = min(len(fifo) - self._limit, len(fifo))
            if over <= 0:
                return  # the consumer has delivered enough of its batch meanwhile
            if self._drop_oldest:
                for _ in range(over):
                    fifo.popleft()
                self.dropped += over
                return
            latest = self._latest
            dropped = 0
            while fifo:
                dropped += latest.put(fifo.popleft())
            self.dropped += dropped
            self._slow = True

    def take(self) -> Iterator[Tick] | None:
        """The next batch, oldest first, or None when nothing is waiting. The consumer calls
        it once it has gone through the previous batch."""
        with self._lock:
            if self._latest:
                batch = self._latest.pop_all()
                self._slow = self._closed
            elif self._fifo:
                fifo = self._fifo
                popleft = fifo.popleft
                batch = [popleft() for _ in range(min(len(fifo), self.maxsize))]
            else:
                return None
            self.taken += len(batch)
            self._limit = self.maxsize - len(batch)
            self._hand = hand = iter(batch)
            return hand

    def close(self) -> None:
        """From now on every `put` is dropped (counted); what is queued can still be taken."""
        with self._lock:
            self._closed = self._slow = True

    @property
    def delivered(self) -> int:
        """Ticks the consumer has taken from its batches."""
        return self.taken - length_hint(self._hand)

    @property
    def waiting(self) -> int:
        """Ticks put and not yet taken (in a batch)."""
        return len(self._fifo) + len(self._latest)

    @property
    def queued(self) -> int:
        """Ticks put and not yet delivered: waiting, or in the batch in hand."""
        return len(self._fifo) + len(self._latest) + length_hint(self._hand)

    def counts(self) -> tuple[int, int, int]:
        """(delivered, dropped, queued) from one look at the batch in hand (a consistent view
        while `take` and `put`'s locked paths are held off: the lock-free appends only add to
        what waits)."""
        in_hand = length_hint(self._hand)
        return self.taken - in_hand, self.dropped, self.waiting + in_hand

    @property
    def conflating(self) -> bool:
        return bool(self._latest)

    def __bool__(self) -> bool:
        return bool(self._fifo) or bool(self._latest)


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
