from __future__ import annotations

import asyncio

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from foxtrot_stream.buffer import ConflatingBuffer, LatestPerSymbol
from foxtrot_stream.model import Tick, TransportKind


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
