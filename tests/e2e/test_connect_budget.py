"""Many shards reconnecting at once stay within the exchange's per-IP connection allowance.

The simulator runs on its own thread and event loop here, as an exchange would run elsewhere:
it stamps each attempt when it arrives, not when a loop shared with 50 clients gets round to it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import attrs
import pytest

from foxtrot_stream.contract.plugins import PluginHost
from foxtrot_stream.runtime.feed import Feed
from foxtrot_stream_binance.simulator import Simulator, SimulatorConfig, synthetic_symbols

from e2e_helpers import Logs, Recorder, settings_for, wait_for

LIMIT, WINDOW = 20, 2.0  # Binance's 300 per 5 minutes, scaled down
SYMBOLS = synthetic_symbols(50)


def max_in_window(times: list[float], window: float) -> int:
    return max(
        (sum(1 for t in times[i:] if t - start < window) for i, start in enumerate(times)),
        default=0,
    )


class ThreadedSimulator:
    def __init__(self, config: SimulatorConfig) -> None:
        self.sim = Simulator(config)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> Simulator:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.sim.start(), self.loop).result(10)
        return self.sim

    def call(self, fn: object) -> None:
        self.loop.call_soon_threadsafe(fn)  # type: ignore[arg-type]

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.sim.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def threaded() -> Iterator[ThreadedSimulator]:
    runner = ThreadedSimulator(SimulatorConfig(symbols=SYMBOLS, rate=5.0, seed=9))
    with runner:
        yield runner


async def test_fifty_shards_reconnecting_at_once_respect_the_budget(
    host: PluginHost, threaded: ThreadedSimulator, logs: Logs
) -> None:
    sim = threaded.sim
    settings = settings_for(host, sim, websocket__heartbeat__interval=2.0)
    feed = Feed(host, settings, "binance", connect_budgets={})
    # one symbol (two streams) per connection: 50 shards
    feed.adapter.limits = attrs.evolve(  # type: ignore[misc]
        feed.adapter.limits, max_streams=2, max_connects=LIMIT, connect_window=WINDOW
    )
    rec = Recorder()
    feed.add_consumer(rec)
    try:
        await feed.start(SYMBOLS)
        assert len(feed.shards) == 50
        await wait_for(lambda: len(sim.clients) == 50, 15, "50 connections")
        threaded.call(sim.drop_all)
        await wait_for(lambda: sim.stats.connection_attempts >= 100, 15, "50 reconnects")
        times = sorted(sim.stats.attempt_times)
        assert max_in_window(times, WINDOW) <= LIMIT
        assert logs.count("BinanceAdapterWebSocket: connection budget: 20 attempts") >= 1
        budget = next(iter(feed.connect_budgets.values()))
        assert budget.waits > 0 and budget.attempts >= 100
    finally:
        await feed.stop()


def test_window_counting_helper() -> None:
    assert max_in_window([0.0, 0.5, 1.0, 2.5, 2.6], 2.0) == 3
