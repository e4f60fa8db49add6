from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterator
from typing import Literal

from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from foxtrot_stream.contract.model import Tick, TransportKind
from foxtrot_stream.runtime.buffer import ConflatingBuffer, HandOff, LatestPerSymbol


def tick(symbol: str, seq: int) -> Tick:
    return Tick("t", symbol, 1.0, 1.0, 2.0, 1.0, None, seq, None, None, 0, TransportKind.WEBSOCKET)


async def test_newest_quote_per_symbol_wins_and_drops_are_counted() -> None:
    got: list[tuple[str, int | None]] = []
    buffer = ConflatingBuffer(lambda t: got.append((t.symbol, t.seq)))
    for seq in range(5):
        buffer.put(tick("A", seq))
        buffer.put(tick("B", seq))
    assert buffer.pending == 2 and buffer.dropped == 8
    task = asyncio.create_task(buffer.run())
    await asyncio.sleep(0.01)
    assert got == [("A", 4), ("B", 4)]
    task.cancel()


async def test_drain_delivers_whatever_is_pending() -> None:
    got: list[int | None] = []

    async def consumer(t: Tick) -> None:
        got.append(t.seq)

    buffer = ConflatingBuffer(consumer)
    buffer.put(tick("A", 1))
    await buffer.drain()
    assert got == [1] and buffer.pending == 0


async def test_a_consumer_that_raises_is_counted_and_goes_on() -> None:
    def bad(_t: Tick) -> None:
        raise ValueError("boom")

    buffer = ConflatingBuffer(bad)
    buffer.put(tick("A", 1))
    task = asyncio.create_task(buffer.run())
    await asyncio.sleep(0.01)
    assert buffer.errors == 1 and buffer.delivered == 1
    task.cancel()


async def test_a_busy_symbol_keeps_its_place_and_is_never_starved() -> None:
    # One tick taken per two arriving (a busy symbol every time, a quiet one in turn): the
    # busy symbol is served in turn instead of being sent to the back on every update.
    served: list[str] = []
    buffer = ConflatingBuffer(lambda t: served.append(t.symbol))
    quiet = [f"Q{i}" for i in range(5)]
    for step in range(600):
        buffer.put(tick("BUSY", step))
        buffer.put(tick(quiet[step % len(quiet)], step))
        await buffer._deliver_next()
    assert served.count("BUSY") >= 600 // (len(quiet) + 1) - 1
    assert buffer.received == buffer.delivered + buffer.dropped + buffer.pending


class OneConflatingQueue(RuleBasedStateMachine):
    """`LatestPerSymbol`, the queue behind both the feed's buffered consumers and the engine's
    conflating thread hand-off, against a plain model: per symbol the newest tick, symbols in
    the order of their oldest undelivered update, at most `maxsize`, every loss counted."""

    def __init__(self) -> None:
        super().__init__()
        self.maxsize = 3
        self.queue = LatestPerSymbol(self.maxsize)
        self.model: list[tuple[str, int]] = []
        self.seq = 0
        self.put_count = self.popped = self.dropped = 0

    @rule(symbol=st.sampled_from("ABCDE"))
    def put(self, symbol: str) -> None:
        self.seq += 1
        self.put_count += 1
        self.dropped += self.queue.put(tick(symbol, self.seq))
        for i, (s, _) in enumerate(self.model):
            if s == symbol:
                self.model[i] = (symbol, self.seq)
                return
        if len(self.model) >= self.maxsize:
            self.model.pop(0)
        self.model.append((symbol, self.seq))

    @precondition(lambda self: self.model)
    @rule()
    def pop(self) -> None:
        got = self.queue.pop()
        self.popped += 1
        assert (got.symbol, got.seq) == self.model.pop(0)

    @invariant()
    def same_and_accounted(self) -> None:
        assert len(self.queue) == len(self.model) <= self.maxsize
        assert bool(self.queue) == bool(self.model)
        assert self.put_count == self.popped + self.dropped + len(self.queue)


TestOneConflatingQueue = OneConflatingQueue.TestCase


class ThreadHandOff(RuleBasedStateMachine):
    """`HandOff`, the engine's queue towards a consumer thread, driven as the two threads drive
    it (one side puts, the other takes a batch once it has gone through the last one and
    delivers its ticks one by one), against what it promises: while the consumer is never
    behind by more than `maxsize`, nothing is lost and the order is the arrival order; per
    symbol, never an older tick after a newer; every tick put is delivered, queued or counted as
    dropped (checked tick by tick, not only in sums); memory bounded by `maxsize` in order and
    by the symbols once conflating; under "conflate" a symbol's newest tick is never dropped
    (with at most `maxsize` symbols)."""

    def __init__(self) -> None:
        super().__init__()
        self.queue = HandOff(1)
        self.policy = "conflate"
        self.put_ticks: list[Tick] = []
        self.delivered: list[Tick] = []
        self.hand: Iterator[Tick] | None = None
        self.hand_left: list[Tick] = []
        self.seq = 0
        self.behind = False  # a put found `maxsize` or more already queued
        self.closed = False
        self.put_before_close: list[Tick] = []

    @initialize(maxsize=st.integers(1, 6), policy=st.sampled_from(["conflate", "drop_oldest"]))
    def start(self, maxsize: int, policy: Literal["conflate", "drop_oldest"]) -> None:
        self.queue = HandOff(maxsize, policy)
        self.policy = policy

    def queued_in_model(self) -> int:
        """Put, minus delivered, minus dropped: what the queue should hold."""
        return len(self.put_ticks) - len(self.delivered) - self.queue.dropped

    @rule(symbol=st.sampled_from("ABC"))
    def put(self, symbol: str) -> None:
        if self.queued_in_model() >= self.queue.maxsize:
            self.behind = True
        self.seq += 1
        t = tick(symbol, self.seq)
        dropped_before = self.queue.dropped
        self.queue.put(t)
        self.put_ticks.append(t)
        if not self.closed:
            self.put_before_close.append(t)
        if not self.behind and not self.closed:
            assert self.queue.dropped == dropped_before  # under the bound: nothing lost

    @precondition(lambda self: not self.hand_left)
    @rule()
    def take(self) -> None:
        batch = self.queue.take()
        if batch is None:
            assert not self.queue and self.queue.waiting == 0
            return
        self.hand = batch
        self.hand_left = list(copy.copy(batch))  # what it holds, the batch itself untouched
        assert 0 < len(self.hand_left) <= self.queue.maxsize

    @precondition(lambda self: self.hand_left)
    @rule(n=st.integers(1, 4))
    def deliver(self, n: int) -> None:
        assert self.hand is not None
        for _ in range(min(n, len(self.hand_left))):
            t = next(self.hand)  # as the consumer thread's `for` loop takes it
            assert t is self.hand_left.pop(0)
            self.delivered.append(t)

    @precondition(lambda self: not self.closed)
    @rule()
    def close(self) -> None:
        self.queue.close()
        self.closed = True

    @invariant()
    def every_tick_accounted_for(self) -> None:
        delivered, dropped, queued = self.queue.counts()
        assert delivered == len(self.delivered)
        assert len(self.put_ticks) == delivered + dropped + queued
        assert queued == self.queued_in_model()
        held = list(self.queue._fifo) + list(self.queue._latest._pending.values())
        held += self.hand_left
        assert len(held) == queued
        kept = {id(t) for t in held} | {id(t) for t in self.delivered}
        lost = [t for t in self.put_ticks if id(t) not in kept]
        assert len(lost) == dropped  # each drop counted once, no tick gone uncounted

    @invariant()
    def per_symbol_order(self) -> None:
        last: dict[str, int] = {}
        for t in [*self.delivered, *self.hand_left]:
            assert t.seq is not None and t.seq > last.get(t.symbol, 0), t
            last[t.symbol] = t.seq
        if not self.behind and not self.closed:  # lossless: exactly the arrival order
            assert [*self.delivered, *self.hand_left, *self.queue._fifo] == self.put_ticks

    @invariant()
    def bounded(self) -> None:
        q = self.queue
        if q.conflating:
            assert self.policy == "conflate" and not q._fifo
            assert len(q._latest) <= min(q.maxsize, len({t.symbol for t in self.put_ticks}))
        elif not self.closed:
            assert q.queued <= q.maxsize
        assert len(self.hand_left) <= q.maxsize

    @invariant()
    def newest_per_symbol_never_dropped_when_conflating(self) -> None:
        if self.policy != "conflate":
            return
        newest = {t.symbol: t for t in self.put_before_close}  # later puts: dropped by design
        if len(newest) > self.queue.maxsize:
            return  # more symbols than maxsize: the one waiting longest is pushed out, counted
        survivors = {id(t) for t in self.delivered} | {id(t) for t in self.hand_left}
        survivors |= {id(t) for t in self.queue._fifo}
        survivors |= {id(t) for t in self.queue._latest._pending.values()}
        for t in newest.values():
            assert id(t) in survivors, t


TestThreadHandOff = ThreadHandOff.TestCase
