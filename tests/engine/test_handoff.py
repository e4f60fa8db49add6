"""The thread hand-off with real threads: a consumer that keeps up loses nothing; a slow one
has a bounded queue, counted drops and still gets each symbol's newest quote; stop() delivers
what was received and leaves no thread behind."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from foxtrot_stream import StreamEngine
from foxtrot_stream.contract.model import Tick, TransportKind
from foxtrot_stream.integrations.engine import Consumer

from engine_helpers import SYMBOLS, Collector, SimulatorThread, wait_until


def tick(symbol: str, seq: int) -> Tick:
    return Tick(
        "binance", symbol, 1.0, 1.0, 2.0, 1.0, None, seq, None, None, seq, TransportKind.WEBSOCKET
    )


def in_order_per_symbol(ticks: list[Tick]) -> bool:
    last: dict[str, tuple[int, int]] = {}
    for t in ticks:
        if t.seq is None:  # a polled quote before the WebSocket proved itself: no id
            continue
        key = (t.seq, t.trade_id if t.trade_id is not None else -1)  # a trade shares its `u`
        if key <= last.get(t.symbol, (-1, -1)):
            return False
        last[t.symbol] = key
    return True


def engine_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("foxtrot-stream")]


def test_a_consumer_that_keeps_up_loses_nothing_with_the_default_policy(
    settings_file: Path, simulator: SimulatorThread
) -> None:
    # 6 symbols at 200 updates/s each (about 1,200 ticks/s plus trades) for about 1.5 s; before
    # the batched hand-off, the default policy dropped about a quarter of such a stream.
    for symbol in SYMBOLS:
        simulator.call(simulator.sim.set_rate, symbol, 200.0)
    engine = StreamEngine.from_settings(settings_file)
    got = Collector()
    consumer = engine.add_consumer(got, name="keeps-up")  # policy and maxsize left to defaults
    engine.start()
    try:
        engine.subscribe(list(SYMBOLS))
        wait_until(lambda: got.count() >= 1500, 10, "1,500 ticks")
    finally:
        assert engine.stop(5)
    stats = consumer.stats()
    assert stats["policy"] == "conflate"
    assert stats["dropped"] == 0 and stats["queued"] == 0
    assert stats["received"] == stats["delivered"] == got.count() >= 1500
    assert in_order_per_symbol(got.ticks)
    assert engine_threads() == []


def test_a_synthetic_producer_loses_nothing_while_the_consumer_keeps_up() -> None:
    # 20,000 ticks from an asyncio loop, 100 per loop iteration and a short wait between
    # iterations (a feed waiting for its socket), against a consumer that only keeps them:
    # the consumer takes them in batches and never falls `maxsize` behind.
    seen: list[Tick] = []
    consumer = Consumer(seen.append, "keeps", "conflate", maxsize=1_000)
    consumer.thread.start()
    ticks = [tick(SYMBOLS[i % len(SYMBOLS)], i + 1) for i in range(20_000)]

    async def run() -> None:
        for i in range(0, len(ticks), 100):
            for t in ticks[i : i + 100]:
                consumer.put(t)
            await asyncio.sleep(0.0002)

    asyncio.run(run())
    consumer.close()
    consumer.thread.join(10)
    assert not consumer.thread.is_alive()
    stats = consumer.stats()
    assert (stats["received"], stats["delivered"], stats["dropped"]) == (20_000, 20_000, 0)
    assert seen == ticks


def test_a_slow_consumer_has_a_bounded_queue_counted_drops_and_each_newest_quote() -> None:
    maxsize, symbols = 50, SYMBOLS[:4]
    delivered: list[Tick] = []
    high_water = 0

    def slow(t: Tick) -> None:
        nonlocal high_water
        high_water = max(high_water, consumer.stats()["queued"])
        delivered.append(t)
        time.sleep(0.002)  # 500 ticks/s at best, against thousands put

    consumer = Consumer(slow, "slow", "conflate", maxsize=maxsize)
    consumer.thread.start()
    ticks = [tick(symbols[i % len(symbols)], i + 1) for i in range(5_000)]
    sampled: list[int] = []

    async def run() -> None:
        for i in range(0, len(ticks), 50):
            for t in ticks[i : i + 50]:
                consumer.put(t)
            sampled.append(consumer.stats()["queued"])
            await asyncio.sleep(0.0005)

    asyncio.run(run())
    consumer.close()
    consumer.thread.join(10)
    assert not consumer.thread.is_alive()
    stats = consumer.stats()
    assert stats["received"] == 5_000 == stats["delivered"] + stats["dropped"]
    assert stats["queued"] == 0 and stats["dropped"] > 4_000  # behind: conflated, counted
    assert len(delivered) == stats["delivered"]
    # bounded: at most maxsize in order; once behind one per symbol besides the batch in hand
    assert max([*sampled, high_water]) <= maxsize + len(symbols)
    assert in_order_per_symbol(delivered)
    newest = {t.symbol: t for t in ticks}
    last_delivered = {t.symbol: t for t in delivered}
    assert last_delivered == newest  # each symbol's newest quote reached the consumer


def test_stop_delivers_what_the_default_queue_holds_and_ends_every_thread(
    settings_file: Path,
) -> None:
    engine = StreamEngine.from_settings(settings_file)
    gate = threading.Event()
    seen = Collector()

    def held(t: Tick) -> None:
        gate.wait(5)
        seen(t)

    consumer = engine.add_consumer(held, name="held")  # default policy: conflate
    engine.start()
    try:
        engine.subscribe(["BTCUSDT", "ETHUSDT"])
        wait_until(lambda: consumer.stats()["queued"] >= 5, 5, "a backlog behind the consumer")
        stopper = threading.Thread(target=engine.stop, args=(10,))
        stopper.start()
        wait_until(lambda: not engine.running, 2, "stop to begin")
        gate.set()
        stopper.join(10)
    finally:
        gate.set()
        assert engine.stop(10)
    stats = consumer.stats()
    assert stats["queued"] == 0 and stats["dropped"] == 0  # under maxsize: nothing conflated
    assert seen.count() == stats["received"] == stats["delivered"]
    assert in_order_per_symbol(seen.ticks)
    assert engine_threads() == []


def test_a_consumer_added_while_streaming_gets_every_later_tick_once(
    settings_file: Path,
) -> None:
    # Each consumer's queue is a consumer of every feed: one added after the feed started is
    # attached to it on the loop, once (a tick delivered twice would break the order check).
    engine = StreamEngine.from_settings(settings_file)
    first, second = Collector(), Collector()
    engine.add_consumer(first, name="first")
    engine.start()
    try:
        engine.subscribe(["BTCUSDT", "ETHUSDT"])
        wait_until(lambda: first.count() >= 10, 5, "ticks to the first consumer")
        late = engine.add_consumer(second, name="second")
        wait_until(lambda: second.count() >= 20, 5, "ticks to the consumer added later")
    finally:
        assert engine.stop(5)
    assert late.stats()["dropped"] == 0 and late.stats()["delivered"] == second.count()
    assert in_order_per_symbol(second.ticks) and in_order_per_symbol(first.ticks)
    ids = {id(t) for t in first.ticks}
    assert all(id(t) in ids for t in second.ticks)  # the same ticks, from the same feed
    assert engine_threads() == []
