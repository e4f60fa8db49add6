"""Slow consumers: bounded queues, an explicit policy, every drop counted, the loop never waits."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from foxtrot_stream import StreamEngine
from foxtrot_stream.contract.model import Tick, TransportKind
from foxtrot_stream.integrations.engine import Consumer

from engine_helpers import Collector, wait_until


def tick(symbol: str, seq: int) -> Tick:
    return Tick(
        "binance", symbol, 1.0, 1.0, 2.0, 1.0, None, seq, None, None, seq, TransportKind.WEBSOCKET
    )


class Gated:
    """A consumer held inside its first call until released."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.got = Collector()

    def __call__(self, t: Tick) -> None:
        self.entered.set()
        self.gate.wait(5)
        self.got(t)


def started(consumer: Consumer, first: Tick, gated: Gated) -> None:
    consumer.thread.start()
    consumer.put(first)
    assert gated.entered.wait(5)  # the thread now holds `first` and is stuck in the callback


def test_conflate_loses_nothing_while_at_most_maxsize_ticks_are_queued() -> None:
    gated = Gated()
    consumer = Consumer(gated, "c", "conflate", maxsize=20)
    started(consumer, tick("A", 0), gated)
    for seq in range(1, 11):
        consumer.put(tick("A", seq))
        consumer.put(tick("B", seq))
    stats = consumer.stats()
    assert stats["queued"] == 20 and stats["dropped"] == 0 and stats["received"] == 21
    gated.gate.set()
    consumer.close()
    consumer.thread.join(5)
    expected = [("A", 0)] + [(s, seq) for seq in range(1, 11) for s in "AB"]
    assert [(t.symbol, t.seq) for t in gated.got.ticks] == expected
    assert consumer.stats()["delivered"] == 21


def test_conflate_beyond_maxsize_keeps_the_newest_tick_per_symbol_and_counts_the_rest() -> None:
    gated = Gated()
    consumer = Consumer(gated, "c", "conflate", maxsize=5)
    started(consumer, tick("A", 0), gated)
    for seq in range(1, 11):
        consumer.put(tick("A", seq))
        consumer.put(tick("B", seq))
    stats = consumer.stats()
    assert stats["queued"] == 2 and stats["dropped"] == 18 and stats["received"] == 21
    gated.gate.set()
    consumer.close()
    consumer.thread.join(5)
    assert [(t.symbol, t.seq) for t in gated.got.ticks] == [("A", 0), ("A", 10), ("B", 10)]
    final = consumer.stats()
    assert final["delivered"] == 3 and final["queued"] == 0
    assert final["received"] == final["delivered"] + final["dropped"]


def test_conflate_is_bounded_by_maxsize_symbols_too() -> None:
    gated = Gated()
    consumer = Consumer(gated, "c", "conflate", maxsize=3)
    started(consumer, tick("S0", 0), gated)
    for i in range(1, 8):
        consumer.put(tick(f"S{i}", i))
    assert consumer.stats()["queued"] == 3 and consumer.stats()["dropped"] == 4
    gated.gate.set()
    consumer.close()
    consumer.thread.join(5)
    assert [t.symbol for t in gated.got.ticks] == ["S0", "S5", "S6", "S7"]


def test_drop_oldest_keeps_arrival_order_and_the_newest_maxsize() -> None:
    gated = Gated()
    consumer = Consumer(gated, "c", "drop_oldest", maxsize=5)
    started(consumer, tick("A", 0), gated)
    for seq in range(1, 21):
        consumer.put(tick("A" if seq % 2 else "B", seq))
    stats = consumer.stats()
    assert stats["queued"] == 5 and stats["dropped"] == 15
    gated.gate.set()
    consumer.close()
    consumer.thread.join(5)
    assert [t.seq for t in gated.got.ticks] == [0, 16, 17, 18, 19, 20]


def test_bad_policy_or_size_is_refused() -> None:
    with pytest.raises(ValueError, match="expected one of conflate, drop_oldest"):
        Consumer(print, "c", "block", 10)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 1"):
        Consumer(print, "c", "drop_oldest", 0)


def test_a_raising_consumer_is_counted_and_keeps_receiving() -> None:
    calls: list[int | None] = []

    def bad(t: Tick) -> None:
        calls.append(t.seq)
        raise ValueError("boom")

    consumer = Consumer(bad, "bad", "drop_oldest", 10)
    consumer.thread.start()
    consumer.put(tick("A", 1))
    consumer.put(tick("A", 2))
    consumer.close()
    consumer.thread.join(5)
    assert calls == [1, 2] and consumer.stats()["errors"] == 2


@pytest.mark.parametrize("policy", ["conflate", "drop_oldest"])
def test_a_stuck_consumer_never_slows_the_others_and_its_drops_show_in_status(
    settings_file: Path, policy: str
) -> None:
    engine = StreamEngine.from_settings(settings_file)
    fast = Collector()
    gated = Gated()
    engine.add_consumer(fast, name="fast")
    slow = engine.add_consumer(gated, name="slow", policy=policy, maxsize=4)  # type: ignore[arg-type]
    engine.start()
    try:
        engine.subscribe(["BTCUSDT", "ETHUSDT", "BNBUSDT"])
        assert gated.entered.wait(5)
        before = fast.count()
        wait_until(lambda: fast.count() >= before + 40, 5, "the fast consumer to keep receiving")
        status = {c["name"]: c for c in engine.status()["consumers"]}
        held = status["slow"]
        assert held["policy"] == policy and held["delivered"] == 1
        # drop_oldest: at most maxsize queued; conflate, once behind: one tick per symbol,
        # besides what is left of the batch the consumer took before it got stuck (< maxsize)
        assert 0 < held["queued"] <= (3 + 3 if policy == "conflate" else 4)
        assert held["dropped"] > 0
        assert held["received"] == held["delivered"] + held["dropped"] + held["queued"]
        assert status["fast"]["dropped"] == 0  # keeps up: loses nothing
    finally:
        gated.gate.set()
        assert engine.stop(5)
    final = slow.stats()
    assert final["queued"] == 0 and final["received"] == final["delivered"] + final["dropped"]
    # whatever the policy dropped, a symbol's quotes never go backwards (polled quotes, before
    # the WebSocket has proven itself, carry no id to compare)
    last: dict[str, tuple[int, int]] = {}
    for t in gated.got.ticks:
        if t.seq is None:
            continue
        key = (t.seq, t.trade_id if t.trade_id is not None else -1)  # a trade shares its `u`
        assert key > last.get(t.symbol, (-1, -1)), t
        last[t.symbol] = key


def test_a_tick_after_close_is_counted_as_dropped_not_lost() -> None:
    # After a stop that timed out, the loop may still put ticks while the consumer thread is
    # gone: each is counted, so received = delivered + dropped + queued still holds.
    consumer = Consumer(lambda t: None, "c", "drop_oldest", maxsize=10)
    consumer.put(tick("A", 1))
    consumer.close()
    consumer.put(tick("A", 2))
    batch = consumer._take()
    assert batch is not None and [t.seq for t in batch] == [1]
    assert consumer._take() is None
    stats = consumer.stats()
    assert (stats["received"], stats["delivered"], stats["dropped"], stats["queued"]) == (
        2,
        1,
        1,
        0,
    )
