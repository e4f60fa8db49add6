"""A host's `StreamEngine` reading its ticks from Redis (``redis.consume``) that a feed elsewhere
publishes from the Binance simulator: real `redis-server`, real feed, no exchange for the
engine."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable

import pytest

from foxtrot_stream.config.settings import SettingsError
from foxtrot_stream.contract.model import Tick
from foxtrot_stream.contract.plugins import PluginHost
from foxtrot_stream.integrations.engine import StreamEngine
from foxtrot_stream.runtime.feed import Feed
from foxtrot_stream_binance.simulator import Simulator, SimulatorConfig

from redis_helpers import RedisServer, settings_with_redis

SYMBOLS = ("BTCUSDT", "ETHUSDT")


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    config = SimulatorConfig(symbols=SYMBOLS, rate=50.0, ping_interval=0.5, pong_timeout=2.0,
                             seed=11)  # fmt: skip
    async with Simulator(config) as s:
        yield s


async def wait_for(predicate: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(0.02)


def consuming(url: str, **more: object) -> dict[str, object]:
    return {"redis.consume": True, "redis.url": url, "redis.start": "oldest",
            "redis.block": 0.05, "redis.timeout": 0.5, "redis.retry_max": 0.1} | more  # fmt: skip


def test_publishing_and_consuming_at_once_is_refused(host: PluginHost) -> None:
    with pytest.raises(SettingsError) as err:
        StreamEngine.from_mapping(consuming("redis://127.0.0.1:1/0", **{"redis.enabled": True}),
                                  host=host)  # fmt: skip
    assert "redis.enabled and redis.consume are both true" in str(err.value)


async def test_the_engine_gets_exactly_what_the_publishing_feed_delivered(
    host: PluginHost, sim: Simulator, redis_server: RedisServer
) -> None:
    engine = StreamEngine.from_mapping(consuming(redis_server.url), host=host)
    got: list[Tick] = []
    lock = threading.Lock()

    def collect(tick: Tick) -> None:
        with lock:
            got.append(tick)

    engine.add_consumer(collect, name="test", policy="drop_oldest", maxsize=100_000)
    engine.start()
    try:
        assert await asyncio.to_thread(engine.subscribe, SYMBOLS, "binance") == {}
        feed = Feed(host, settings_with_redis(host, sim, redis_server.url), "binance")
        delivered: list[Tick] = []
        feed.add_consumer(delivered.append)
        await feed.start(SYMBOLS)
        await wait_for(lambda: len(delivered) >= 80, 5, "80 ticks from the simulator")
        await feed.stop()  # flushes the sink
        await wait_for(lambda: len(got) >= len(delivered), 3, "the engine caught up")
        await asyncio.sleep(0.1)  # anything more would be a tick twice
        status = await asyncio.to_thread(engine.status)
    finally:
        await asyncio.to_thread(engine.stop, 5)
    for symbol in SYMBOLS:
        assert [t for t in got if t.symbol == symbol] == [
            t for t in delivered if t.symbol == symbol
        ]
    assert len(got) == len(delivered)
    source = status["adapters"]["binance"]["source"]
    assert source["connected"] and source["read"] == len(delivered) and source["errors"] == 0
    assert status["adapters"]["binance"]["state"] == "streaming"
