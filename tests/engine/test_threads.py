"""Thread safety under load, and no leaks: threads, loop tasks and sockets across 50 cycles."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest

from foxtrot_stream import StreamEngine
from foxtrot_stream.config.settings import load
from foxtrot_stream.contract.plugins import PluginHost

from engine_helpers import SYMBOLS, Collector, open_fds, wait_until

WORKERS = 3
OPS = 10  # subscription changes are paced to the exchange's message limit (5/s per connection)


@pytest.mark.parametrize("seed", [1, 2])
def test_concurrent_subscribe_and_unsubscribe_from_several_threads_while_streaming(
    settings_file: Path, seed: int
) -> None:
    """Each worker owns two symbols and flips them at random (so its end state is known) while
    the others do the same and a reader polls status(); then the engine's symbols must be
    exactly the union of what the workers left subscribed, and only those keep streaming."""
    engine = StreamEngine.from_settings(settings_file)
    ticks = Collector()
    engine.add_consumer(ticks, name="all", policy="drop_oldest", maxsize=100_000)
    engine.start()
    errors: list[BaseException] = []
    wanted: dict[str, bool] = {}
    start = threading.Barrier(WORKERS + 1)
    done = threading.Event()

    def worker(index: int) -> None:
        rng = random.Random(seed * 100 + index)
        mine = SYMBOLS[2 * index : 2 * index + 2]
        try:
            start.wait(5)
            for _ in range(OPS):
                symbol = rng.choice(mine)
                if rng.random() < 0.6:
                    assert engine.subscribe(symbol, "binance") == {}
                    wanted[symbol] = True
                else:
                    engine.unsubscribe([symbol], "binance")
                    wanted[symbol] = False
                time.sleep(rng.uniform(0, 0.01))
        except BaseException as exc:
            errors.append(exc)

    def reader() -> None:
        try:
            start.wait(5)
            while not done.is_set():
                engine.status()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
    status_thread = threading.Thread(target=reader)
    try:
        for t in (*threads, status_thread):
            t.start()
        for t in threads:
            t.join(30)
        done.set()
        status_thread.join(10)
        assert not errors, errors
        expected = {s for s, on in wanted.items() if on}
        subscribed = set(engine.status()["adapters"]["binance"]["symbols"])
        assert subscribed == expected, (seed, wanted)
        # the subscribed ones stream, the others have stopped
        wait_until(lambda: all(ticks.count(s) > 0 for s in expected), 5, "every kept symbol")
        time.sleep(0.3)  # lets ticks already queued for dropped symbols drain
        quiet = {s: ticks.count(s) for s in SYMBOLS if s not in expected}
        counts = {s: ticks.count(s) for s in expected}
        wait_until(
            lambda: all(ticks.count(s) > counts[s] for s in expected), 5, "kept symbols to flow"
        )
        assert {s: ticks.count(s) for s in quiet} == quiet
    finally:
        assert engine.stop(5)


CYCLES = 50


def test_fifty_start_stop_cycles_leak_no_thread_task_or_socket(
    settings_file: Path, host: PluginHost
) -> None:
    settings = load(settings_file, host.schema()).settings
    threads_before = set(threading.enumerate())
    fds_before = open_fds()
    for cycle in range(CYCLES):
        engine = StreamEngine(settings, host)
        ticks = Collector()
        engine.add_consumer(ticks, name=f"cycle{cycle}")
        engine.start()
        if cycle % 2 == 0:  # every other cycle streams before stopping; the rest stop at once
            engine.subscribe("BTCUSDT")
            wait_until(lambda t=ticks: t.count() > 0, 5, "a tick")  # type: ignore[misc]
        assert engine.stop(5), cycle
        assert engine.leftover_tasks == [], (cycle, engine.leftover_tasks)
        assert engine._loop is not None and engine._loop.is_closed()
        assert set(threading.enumerate()) == threads_before, cycle
    # the simulator closes its side of each connection on its own thread: wait for it
    wait_until(lambda: open_fds() <= fds_before, 5, "sockets to close")
    assert open_fds() == fds_before
