"""The Redis Streams sink against a real `redis-server` and the bundled Binance simulator."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from foxtrot_stream.contract.model import Tick, TransportKind
from foxtrot_stream.contract.plugins import PluginHost
from foxtrot_stream.runtime.feed import Feed
from foxtrot_stream.surfaces.prometheus import exposition
from foxtrot_stream_binance.simulator import Simulator, SimulatorConfig
from foxtrot_stream_redis.ids import StreamIds, parse_id, stream_key
from foxtrot_stream_redis.settings import RedisSettings
from foxtrot_stream_redis.sink import RedisSink, entry
from foxtrot_stream_redis.source import RedisSource

from redis_helpers import RedisServer, settings_with_redis

SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT")
WS = TransportKind.WEBSOCKET


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    config = SimulatorConfig(
        symbols=SYMBOLS, rate=50.0, ping_interval=0.5, pong_timeout=2.0, seed=7
    )
    async with Simulator(config) as s:
        yield s


class Recorder:
    def __init__(self) -> None:
        self.ticks: list[Tick] = []
        self.at: list[float] = []

    def __call__(self, tick: Tick) -> None:
        self.ticks.append(tick)
        self.at.append(time.monotonic())

    def of(self, symbol: str) -> list[Tick]:
        return [t for t in self.ticks if t.symbol == symbol]


async def wait_for(predicate: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(0.02)


async def read_stream(url: str, symbol: str) -> list[tuple[tuple[int, int], dict[str, str]]]:
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        rows = await client.xrange(stream_key("ticks", "binance", symbol), "-", "+")
    finally:
        await client.aclose()
    return [(parse_id(i), dict(f)) for i, f in rows]


def tick(seq: int | None, trade_id: int | None, ts: int | None = None, bid: float = 1.0,
         transport: TransportKind = WS) -> Tick:  # fmt: skip
    return Tick("binance", "BTCUSDT", bid, 1.0, bid + 1, 1.0, None, seq, trade_id, ts,
                time.time_ns(), transport)  # fmt: skip


def test_entry_ids_follow_the_ticks_ordering_key() -> None:
    ids = StreamIds()
    assert ids.next(tick(100, None)) == (101, 0)
    assert ids.next(tick(100, 7)) == (101, 8 << 16)
    assert ids.next(tick(101, 7)) == (102, 8 << 16)
    polled = tick(None, None, transport=TransportKind.HTTP)
    assert ids.next(polled) == (102, (8 << 16) + 1)  # right after the last streamed one
    assert ids.next(polled) == (102, (8 << 16) + 2)
    assert ids.next(tick(101, 8)) == (102, 9 << 16)  # the next trade is above the polls
    by_time = StreamIds()
    assert by_time.next(tick(None, None, ts=5000)) == (5000, 0)
    assert by_time.next(tick(None, None, ts=5000, bid=2.0)) == (5000, 1 << 16)
    assert by_time.next(tick(None, None, ts=5001)) == (5001, 0)
    assert StreamIds().next(polled) == (0, 1)  # before any streamed tick: a new stream only
    # the order of ids is the sequencer's order of (seq, trade_id)
    keys = [(s, t) for s in (None, 0, 5) for t in (None, 0, 3)]
    made = [StreamIds().next(tick(s, t)) for s, t in keys if (s, t) != (None, None)]
    assert made == sorted(made)


async def test_two_sinks_publish_each_tick_once(redis_server: RedisServer) -> None:
    """The same ticks through two sinks (two feeds' worth): written once, the rest refused by
    Redis and counted as duplicates; MAXLEN ~ trims."""
    settings = RedisSettings(enabled=True, url=redis_server.url, maxlen=50, batch=100)
    ticks = [tick(s, s // 2) for s in range(1, 1001)]
    sinks = [RedisSink(settings, "binance"), RedisSink(settings, "binance")]
    for sink in sinks:
        await sink.start()
    for t in ticks:  # interleaved, the second one a little behind
        sinks[0].put(t)
    await asyncio.sleep(0.05)
    for t in ticks:
        sinks[1].put(t)
    for sink in sinks:
        await sink.stop()
    health = [s.health() for s in sinks]
    assert sum(h["written"] for h in health) == 1000
    assert sum(h["duplicates"] for h in health) == 1000
    assert all(h["dropped"] == 0 and h["errors"] == 0 for h in health)
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        key = stream_key("ticks", "binance", "BTCUSDT")
        info = await client.xinfo_stream(key)
        assert 50 <= info["length"] < 1000  # trimmed, approximately
        assert parse_id(info["last-generated-id"]) == (1001, (500 + 1) << 16)
    finally:
        await client.aclose()


async def test_the_sink_writes_every_tick_the_feed_delivers(
    host: PluginHost, sim: Simulator, redis_server: RedisServer
) -> None:
    feed = Feed(host, settings_with_redis(host, sim, redis_server.url), "binance")
    rec = Recorder()
    feed.add_consumer(rec)
    await feed.start(SYMBOLS)
    await wait_for(lambda: all(len(rec.of(s)) >= 60 for s in SYMBOLS), 10, "60 ticks a symbol")
    status = feed.status()
    metrics = (await exposition([feed])).decode()
    await feed.stop()
    health = feed.sinks[0].health()
    assert health["written"] == len(rec.ticks) and health["dropped"] == 0
    assert health["duplicates"] == 0 and health["queued"] == 0
    for symbol in SYMBOLS:
        stream = await read_stream(redis_server.url, symbol)
        assert [fields for _, fields in stream] == [entry(t) for t in rec.of(symbol)]
    assert status["sinks"][0]["name"] == "redis" and status["sinks"][0]["connected"]
    assert 'foxtrot_stream_sink_written_ticks_total{adapter="binance",sink="redis"}' in metrics


def key_of(fields: dict[str, str]) -> tuple[int, int]:
    return int(fields["seq"] or -1), int(fields["trade_id"] or -1)


def exchange_fields(fields: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in fields.items() if k != "received_ts"}


async def test_two_redundant_feeds_give_each_tick_once_in_order(
    host: PluginHost, sim: Simulator, redis_server: RedisServer
) -> None:
    settings = settings_with_redis(host, sim, redis_server.url, websocket__heartbeat__interval=1.0)
    feeds, recs = [], []
    for _ in range(2):
        feed = Feed(host, settings, "binance")
        rec = Recorder()
        feed.add_consumer(rec)
        feeds.append(feed)
        recs.append(rec)
    await asyncio.gather(*(f.start(SYMBOLS) for f in feeds))
    await wait_for(
        lambda: all(len(r.of(s)) >= 100 for r in recs for s in SYMBOLS), 10, "100 ticks each"
    )
    for feed in feeds:
        await feed.stop()
    health = [f.sinks[0].health() for f in feeds]
    for symbol in SYMBOLS:
        stream = await read_stream(redis_server.url, symbol)
        ids = [i for i, _ in stream]
        assert ids == sorted(set(ids))  # in order, each id once
        streamed = [f for _, f in stream if f["transport"] == "websocket"]
        keys = [key_of(f) for f in streamed]
        assert keys == sorted(set(keys))  # each tick once, in the exchange's order
        # where both feeds have joined (each's 20th tick), the stream is what they delivered:
        # every tick either delivered, once, in order (a tick one feed missed, the other gave)
        mine = [[entry(t) for t in r.of(symbol) if t.transport is WS] for r in recs]
        start = max(key_of(m[20]) for m in mine)
        end = min(key_of(m[-1]) for m in mine)
        union: dict[tuple[int, int], dict[str, str]] = {}
        for m in mine:
            for f in m:
                if start <= key_of(f) <= end:
                    assert union.setdefault(key_of(f), exchange_fields(f)) == exchange_fields(f)
        window = [exchange_fields(f) for f in streamed if start <= key_of(f) <= end]
        assert window == [union[k] for k in sorted(union)]
        assert len(window) >= 50
    print(f"two feeds: delivered {[len(r.ticks) for r in recs]}, written "
          f"{[h['written'] for h in health]}, refused as duplicates "
          f"{[h['duplicates'] for h in health]}")  # fmt: skip
    # each tick was offered twice: once written, once refused by Redis (counted, not errors)
    assert sum(h["duplicates"] for h in health) >= 0.8 * min(len(r.ticks) for r in recs)
    assert all(h["errors"] == 0 and h["dropped"] == 0 for h in health)


async def test_redis_down_then_back_local_consumers_never_stall_and_the_sink_catches_up(
    host: PluginHost, sim: Simulator, redis_server: RedisServer
) -> None:
    settings = settings_with_redis(host, sim, redis_server.url, websocket__heartbeat__interval=1.0)
    feed = Feed(host, settings, "binance")
    rec = Recorder()
    feed.add_consumer(rec)
    await feed.start(SYMBOLS)
    await wait_for(lambda: len(rec.ticks) >= 60, 10, "ticks before the outage")
    sink: Any = feed.sinks[0]
    await asyncio.to_thread(redis_server.stop)
    down_at, before = time.monotonic(), len(rec.ticks)
    await asyncio.sleep(1.5)
    during = len(rec.ticks) - before
    outage_health = sink.health()
    await asyncio.to_thread(redis_server.start)
    up_at = time.monotonic()
    await wait_for(lambda: sink.health()["connected"], 5, "the sink writing again")
    caught_up = time.monotonic() - up_at
    await wait_for(lambda: len(rec.ticks) >= before + during + 60, 10, "ticks after")
    await feed.stop()
    health = sink.health()
    # local consumers kept streaming through the outage: ~50 ticks/s a symbol, no gap > 0.5 s
    assert during >= 100
    gaps = [b - a for a, b in zip(rec.at, rec.at[1:], strict=False) if a >= down_at]
    assert max(gaps) < 0.5
    assert not outage_health["connected"] and outage_health["errors"] >= 1
    assert outage_health["queued"] > 0  # held while Redis was away
    assert health["reconnects"] >= 1 and health["dropped"] == 0 and caught_up < 3
    for symbol in SYMBOLS:  # every delivered tick reached Redis once, in order
        stream = await read_stream(redis_server.url, symbol)
        assert [f for _, f in stream] == [entry(t) for t in rec.of(symbol)]
    print(f"outage 1.5 s: {during} ticks to local consumers, sink errors "
          f"{outage_health['errors']}, held {outage_health['queued']}, caught up in "
          f"{caught_up:.2f} s, reconnects {health['reconnects']}")  # fmt: skip


async def test_a_long_outage_drops_within_the_bound_counted_and_in_order(
    host: PluginHost, sim: Simulator, redis_server: RedisServer
) -> None:
    """A buffer of 40 ticks (and a batch of 10 in flight) and an outage of ~150: the sink holds
    at most that, drops the oldest waiting (counted), and what reaches Redis is still every
    other tick, in order."""
    settings = settings_with_redis(
        host,
        sim,
        redis_server.url,
        websocket__heartbeat__interval=1.0,
        redis__buffer=40,
        redis__batch=10,
    )
    feed = Feed(host, settings, "binance")
    rec = Recorder()
    feed.add_consumer(rec)
    await feed.start(SYMBOLS)
    await wait_for(lambda: len(rec.ticks) >= 30, 10, "ticks before the outage")
    sink: Any = feed.sinks[0]
    await asyncio.to_thread(redis_server.stop)
    await asyncio.sleep(1.0)
    held = sink.health()["queued"]
    await asyncio.to_thread(redis_server.start)
    await wait_for(lambda: sink.health()["connected"], 5, "the sink writing again")
    await asyncio.sleep(0.2)
    await feed.stop()
    health = sink.health()
    assert held <= 40 + 10
    assert health["dropped"] >= 50 and health["reconnects"] >= 1
    assert health["written"] + health["dropped"] == len(rec.ticks)  # every tick accounted for
    delivered = {symbol: [entry(t) for t in rec.of(symbol)] for symbol in SYMBOLS}
    total = 0
    for symbol in SYMBOLS:
        stream = [f for _, f in await read_stream(redis_server.url, symbol)]
        it = iter(delivered[symbol])
        assert all(any(f == d for d in it) for f in stream)  # a subsequence: in order
        total += len(stream)
    assert total == health["written"]


async def test_a_redis_source_reads_back_every_tick_and_resumes_exactly_after_a_restart(
    host: PluginHost, sim: Simulator, redis_server: RedisServer
) -> None:
    """A host consuming from Redis instead of the exchange: the ticks it reads are the ticks the
    feed delivered (equal `Tick`s), none skipped and none twice across a Redis restart."""
    settings = settings_with_redis(host, sim, redis_server.url, websocket__heartbeat__interval=1.0)
    source = RedisSource(
        redis_server.url, "binance", SYMBOLS, start="oldest", block=0.2, retry_max=0.2
    )
    read: list[Tick] = []

    async def consume() -> None:
        async for t in source.ticks():
            read.append(t)

    reader = asyncio.create_task(consume())
    feed = Feed(host, settings, "binance")
    rec = Recorder()
    feed.add_consumer(rec)
    await feed.start(SYMBOLS)
    await wait_for(lambda: len(read) >= 60, 10, "ticks read from Redis")
    await asyncio.to_thread(redis_server.stop)
    await asyncio.sleep(0.8)
    await asyncio.to_thread(redis_server.start)
    await wait_for(lambda: len(rec.ticks) >= len(read) + 60, 10, "more ticks")
    await feed.stop()
    await wait_for(lambda: len(read) == len(rec.ticks), 5, "the reader catching up")
    await asyncio.sleep(0.3)  # and nothing more
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reader
    await source.aclose()
    for symbol in SYMBOLS:
        assert [t for t in read if t.symbol == symbol] == rec.of(symbol)
    assert source.reconnects >= 1 and source.errors >= 1
