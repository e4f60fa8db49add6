"""Many shards reconnecting at once stay within the exchange's per-IP connection allowance."""

from __future__ import annotations

import attrs

from foxtrot_stream.feed import Feed
from foxtrot_stream.plugins import PluginHost
from foxtrot_stream_binance.simulator import Simulator, SimulatorConfig, synthetic_symbols

from e2e_helpers import Logs, Recorder, settings_for, wait_for

LIMIT, WINDOW = 20, 2.0  # Binance's 300 per 5 minutes, scaled down


def max_in_window(times: list[float], window: float) -> int:
    return max(
        (sum(1 for t in times[i:] if t - start < window) for i, start in enumerate(times)),
        default=0,
    )


async def test_fifty_shards_reconnecting_at_once_respect_the_budget(
    host: PluginHost, logs: Logs
) -> None:
    symbols = synthetic_symbols(50)
    async with Simulator(SimulatorConfig(symbols=symbols, rate=5.0, seed=9)) as sim:
        settings = settings_for(host, sim, websocket__heartbeat__interval=2.0)
        feed = Feed(host, settings, "binance", connect_budgets={})
        # one symbol (two streams) per connection: 50 shards
        feed.adapter.limits = attrs.evolve(  # type: ignore[misc]
            feed.adapter.limits, max_streams=2, max_connects=LIMIT, connect_window=WINDOW
        )
        rec = Recorder()
        feed.add_consumer(rec)
        try:
            await feed.start(symbols)
            assert len(feed.shards) == 50
            await wait_for(lambda: len(sim.clients) == 50, 15, "50 connections")
            sim.drop_all()
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
