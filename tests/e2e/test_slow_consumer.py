"""A consumer ten times slower than the feed: memory stays flat and every drop is counted."""

from __future__ import annotations

import asyncio
import time
import tracemalloc

from foxtrot_stream.contract.model import Tick
from foxtrot_stream.contract.plugins import PluginHost
from foxtrot_stream.runtime.feed import Feed
from foxtrot_stream_binance.simulator import Simulator, SimulatorConfig

from e2e_helpers import settings_for, wait_for

DURATION = 12.0


async def test_consumer_ten_times_slower_for_12s_keeps_memory_flat(host: PluginHost) -> None:
    symbols = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT")
    config = SimulatorConfig(symbols=symbols, rate=100.0, trade_ratio=0.0, seed=11)
    async with Simulator(config) as sim:
        feed = Feed(host, settings_for(host, sim), "binance")
        counted = [0]
        feed.add_consumer(lambda _t: counted.__setitem__(0, counted[0] + 1))
        await feed.start(symbols)
        last: dict[str, int] = {}
        order_ok = [True]

        async def slow(tick: Tick) -> None:
            # newest per symbol, never older after newer (polled quotes, before the WebSocket
            # has proven itself, carry no id)
            if tick.seq is not None:
                if tick.seq <= last.get(tick.symbol, -1):
                    order_ok[0] = False
                last[tick.symbol] = tick.seq
            await asyncio.sleep(0.05)  # 20 ticks/s against the feed's ~400/s

        buffer = feed.add_buffered_consumer(slow)
        tracemalloc.start()
        try:
            start = time.monotonic()
            await wait_for(lambda: time.monotonic() > start + 3.0, 10, "warm-up")
            early, _ = tracemalloc.get_traced_memory()
            await wait_for(lambda: time.monotonic() > start + DURATION, DURATION + 5, "the run")
            late, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        feed_rate = counted[0] / DURATION
        slow_rate = buffer.delivered / DURATION
        assert feed_rate > 9 * slow_rate, (feed_rate, slow_rate)
        # ~3,500 ticks (about 500 KiB if held) went past the slow consumer in 9 s; none is held
        assert late - early < 256 * 1024, (early, late)
        assert buffer.high_water <= len(symbols)
        assert buffer.dropped > 0.8 * buffer.received
        assert buffer.received == buffer.delivered + buffer.dropped + buffer.pending
        assert order_ok[0]
        await feed.stop()
        assert buffer.pending == 0  # shutdown delivered what was received
