"""A host's `StreamEngine` reading its ticks from Redis (``redis.consume``) that a feed elsewhere
publishes from the Binance simulator: real `redis-server`, real feed, no exchange for the
engine."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import redis

from foxtrot_stream.config.settings import SettingsError
from foxtrot_stream.contract.model import Tick, TransportKind
from foxtrot_stream.contract.plugins import PluginHost
from foxtrot_stream.integrations.engine import StreamEngine
from foxtrot_stream.runtime.feed import Feed
from foxtrot_stream_binance.simulator import Simulator, SimulatorConfig
from foxtrot_stream_redis.ids import stream_key
from foxtrot_stream_redis.sink import entry

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


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:  # loopback only
        body: bytes = response.read()
        return body


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
        listed = await feed.instruments()
        await feed.stop()  # flushes the sink
        await wait_for(lambda: len(got) >= len(delivered), 3, "the engine caught up")
        await asyncio.sleep(0.1)  # anything more would be a tick twice
        status = await asyncio.to_thread(engine.status)
        # what an operator scrapes: /status and /metrics show the source
        page, _ = await asyncio.to_thread(engine.serve, "127.0.0.1", 0)  # http://…:port/
        served = json.loads(await asyncio.to_thread(fetch, page + "status"))
        metrics = (await asyncio.to_thread(fetch, page + "metrics")).decode()
        # and the contracts: the instrument list the publishing feed's sink left in Redis
        assert await asyncio.to_thread(engine.instruments, "binance") == listed
    finally:
        await asyncio.to_thread(engine.stop, 5)
    assert feed.sinks[0].instruments_written == 1  # type: ignore[attr-defined]
    assert {i.symbol for i in listed} >= set(SYMBOLS)
    for symbol in SYMBOLS:
        assert [t for t in got if t.symbol == symbol] == [
            t for t in delivered if t.symbol == symbol
        ]
    assert len(got) == len(delivered)
    source = status["adapters"]["binance"]["source"]
    assert source["connected"] and source["read"] == len(delivered) and source["errors"] == 0
    assert status["adapters"]["binance"]["state"] == "streaming"
    assert served["adapters"][0]["source"]["read"] == len(delivered)
    # latency as the feed measured it (exchange event → its receipt), from the trades' times
    for symbol in SYMBOLS:
        trades = [t for t in got if t.symbol == symbol and t.exchange_ts is not None]
        p50 = served["adapters"][0]["symbols"][symbol]["latency_ms"]["p50"]
        lags = sorted((t.received_ts / 1e6 - t.exchange_ts) for t in trades)
        assert trades and lags[0] <= p50 <= lags[-1], (symbol, p50, lags[:1], lags[-1:])
    labels = '{adapter="binance",source="redis"}'
    assert f"foxtrot_stream_source_read_ticks_total{labels} {float(len(delivered))}" in metrics
    assert f"foxtrot_stream_source_connected{labels} 1.0" in metrics


def test_the_vnpy_gateway_streams_from_redis(redis_server: RedisServer, tmp_path: Path) -> None:
    """Through a host: the gateway's settings say consume; no exchange is asked for ticks."""
    from vnpy.event import EventEngine
    from vnpy.trader.constant import Exchange
    from vnpy.trader.event import EVENT_TICK
    from vnpy.trader.object import SubscribeRequest

    from foxtrot_stream.integrations.vnpy import FoxtrotStreamGateway

    settings = tmp_path / "vt_setting.json"
    settings.write_text(json.dumps(consuming(redis_server.url)), encoding="utf-8")
    bids: list[float] = []
    event_engine = EventEngine(interval=1)
    event_engine.register(EVENT_TICK, lambda event: bids.append(event.data.bid_price_1))
    event_engine.start()
    gateway = FoxtrotStreamGateway(event_engine)
    try:
        gateway.connect({"settings_file": str(settings)})
        gateway.subscribe(SubscribeRequest("BTCUSDT", Exchange.GLOBAL))
        client = redis.Redis.from_url(redis_server.url)
        for seq in range(1, 21):
            t = Tick("binance", "BTCUSDT", 100.0 + seq, 1.0, 101.0 + seq, 1.0, None, seq, None,
                     None, time.time_ns(), TransportKind.WEBSOCKET)  # fmt: skip
            client.xadd(stream_key("ticks", "binance", "BTCUSDT"), entry(t), id=f"{seq}-0")  # type: ignore[arg-type]
        client.close()
        deadline = time.monotonic() + 3
        while len(bids) < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        status = gateway.status()
    finally:
        gateway.close(5)
        event_engine.stop()
    assert bids == [100.0 + seq for seq in range(1, 21)]
    assert status["adapters"]["binance"]["source"]["read"] == 20
