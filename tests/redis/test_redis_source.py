"""`RedisSource` in a consumer group, against a real `redis-server`: work sharing, and a
reader that comes back (recreated, or Redis restarted) with no gap and nothing acknowledged
twice."""

from __future__ import annotations

import asyncio
import contextlib
import time

import redis.asyncio as aioredis

from foxtrot_stream.contract.model import Tick, TransportKind
from foxtrot_stream_redis.ids import stream_key
from foxtrot_stream_redis.sink import entry
from foxtrot_stream_redis.source import RedisSource

from redis_helpers import RedisServer

SYMBOLS = ("BTCUSDT", "ETHUSDT")


def tick(symbol: str, seq: int) -> Tick:
    return Tick("binance", symbol, 1.0 + seq, 1.0, 2.0 + seq, 1.0, None, seq, None, None,
                time.time_ns(), TransportKind.WEBSOCKET)  # fmt: skip


async def publish(url: str, seqs: range) -> list[Tick]:
    """XADD each symbol's ticks `seqs` (ids as the sink gives them); the ticks written."""
    client = aioredis.Redis.from_url(url)
    written = []
    try:
        for seq in seqs:
            for symbol in SYMBOLS:
                t = tick(symbol, seq)
                await client.xadd(stream_key("ticks", "binance", symbol), entry(t),  # type: ignore[arg-type]
                                  id=f"{seq + 1}-0")  # fmt: skip
                written.append(t)
    finally:
        await client.aclose()
    return written


def group_source(url: str, consumer: str, count: int = 1000) -> RedisSource:
    return RedisSource(url, "binance", SYMBOLS, start="oldest", group="g", consumer=consumer,
                       block=0.05, count=count, timeout=0.5, retry_max=0.1)  # fmt: skip


async def take(source: RedisSource, out: list[Tick], n: int | None = None) -> None:
    async for t in source.ticks():
        out.append(t)
        if n is not None and len(out) >= n:
            return


async def pending(url: str, group: str = "g") -> int:
    """Entries of the group's streams given to a consumer and not acknowledged."""
    client = aioredis.Redis.from_url(url)
    try:
        counts = [await client.xpending(stream_key("ticks", "binance", s), group)
                  for s in SYMBOLS]  # fmt: skip
    finally:
        await client.aclose()
    return sum(int(c["pending"]) for c in counts)


def key(t: Tick) -> tuple[str, int | None]:
    return t.symbol, t.seq


async def test_group_consumers_share_the_entries_each_to_one(redis_server: RedisServer) -> None:
    written = await publish(redis_server.url, range(100))
    a, b = (
        group_source(redis_server.url, "a", count=5),
        group_source(redis_server.url, "b", count=5),
    )
    got_a: list[Tick] = []
    got_b: list[Tick] = []
    enough = asyncio.Event()

    async def share(source: RedisSource, out: list[Tick]) -> None:
        async for t in source.ticks():
            out.append(t)
            if len(got_a) + len(got_b) >= 200 * len(SYMBOLS):
                enough.set()

    tasks = [asyncio.create_task(share(a, got_a)), asyncio.create_task(share(b, got_b))]
    written += await publish(redis_server.url, range(100, 200))  # while both read
    await asyncio.wait_for(enough.wait(), 3)
    await asyncio.sleep(0.1)  # anything more would be a duplicate
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await a.aclose()
    await b.aclose()
    ka, kb = [key(t) for t in got_a], [key(t) for t in got_b]
    assert got_a and got_b
    assert not set(ka) & set(kb)
    assert sorted(ka + kb) == sorted(key(t) for t in written)
    assert len(ka) == len(set(ka)) and len(kb) == len(set(kb))
    assert sorted(got_a + got_b, key=key) == sorted(written, key=key)  # equal ticks
    for got in (got_a, got_b):  # each symbol in order
        for symbol in SYMBOLS:
            seqs = [t.seq or 0 for t in got if t.symbol == symbol]
            assert seqs == sorted(seqs)


async def test_group_consumer_recreated_resumes_without_gap_or_repeat(
    redis_server: RedisServer,
) -> None:
    written = await publish(redis_server.url, range(50))
    got: list[Tick] = []
    first = group_source(redis_server.url, "c", count=8)
    await take(first, got, 21)  # stops in the middle of a batch: the rest stays pending
    await first.aclose()  # acknowledges the 21 handed on
    assert first.acked == 21
    again = group_source(redis_server.url, "c", count=8)
    task = asyncio.create_task(take(again, got, len(written)))
    await asyncio.wait_for(task, 3)
    await again.aclose()
    assert [key(t) for t in got] != [] and sorted(map(key, got)) == sorted(map(key, written))
    assert len(set(map(key, got))) == len(got)
    # what it re-read from its own pending entries was acknowledged too: nothing is left
    assert await pending(redis_server.url) == 0


async def test_group_consumer_survives_a_redis_restart(redis_server: RedisServer) -> None:
    written = await publish(redis_server.url, range(30))
    source = group_source(redis_server.url, "d", count=7)
    reader = source.ticks()
    got = [await anext(reader) for _ in range(10)]  # 7 acknowledged, 3 handed on, 4 not
    # Redis goes with 7 entries pending for "d", 3 of them handed on already: after the
    # restart they are pending again, and only the other 4 may be handed on
    await asyncio.to_thread(redis_server.stop)
    await asyncio.to_thread(redis_server.start)
    written += await publish(redis_server.url, range(30, 60))
    async with asyncio.timeout(3):
        while len(got) < len(written):
            got.append(await anext(reader))
    with contextlib.suppress(TimeoutError):  # nothing more may come: it would be a repeat
        async with asyncio.timeout(0.2):
            got.append(await anext(reader))
    await reader.aclose()
    await source.aclose()
    assert source.reconnects >= 1
    assert sorted(map(key, got)) == sorted(map(key, written))
    assert len(set(map(key, got))) == len(got)
    # and everything it handed on, re-read pending entries included, is acknowledged
    assert await pending(redis_server.url) == 0


async def test_an_entry_that_is_not_a_tick_is_counted_and_skipped(
    redis_server: RedisServer,
) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    await client.xadd(stream_key("ticks", "binance", "BTCUSDT"), {"note": "by hand"}, id="1-0")
    await client.aclose()
    written = [t for t in await publish(redis_server.url, range(1, 4)) if t.symbol == "BTCUSDT"]
    source = RedisSource(redis_server.url, "binance", ["BTCUSDT"], start="oldest", block=0.05)
    got: list[Tick] = []
    await asyncio.wait_for(take(source, got, len(written)), 3)
    await source.aclose()
    assert got == written and source.health()["malformed"] == 1


async def test_a_dead_group_consumers_pending_entries_are_taken_over(
    redis_server: RedisServer,
) -> None:
    """Consumer "dead" is given entries and never acknowledges them (its process died): after
    `claim_after` a live consumer of the group takes them over, so the group still gets every
    entry, each once."""
    written = await publish(redis_server.url, range(40))
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        for symbol in SYMBOLS:
            k = stream_key("ticks", "binance", symbol)
            await client.xgroup_create(k, "g", id="0")
            await client.xreadgroup("g", "dead", {k: ">"}, count=15)  # given, never acked
    finally:
        await client.aclose()
    live = RedisSource(redis_server.url, "binance", SYMBOLS, start="oldest", group="g",
                       consumer="live", block=0.05, timeout=0.5, retry_max=0.1,
                       claim_after=0.2)  # fmt: skip
    got: list[Tick] = []
    await asyncio.wait_for(take(live, got, len(written)), 3)
    with contextlib.suppress(TimeoutError):  # nothing more may come: it would be a repeat
        await asyncio.wait_for(take(live, got, len(written) + 1), 0.4)
    await live.aclose()
    assert sorted(map(key, got)) == sorted(map(key, written))
    assert len(set(map(key, got))) == len(got)
    assert live.claimed == 15 * len(SYMBOLS) and live.acked == len(written)
    assert await pending(redis_server.url) == 0  # nothing is left pending for anyone
