"""Two redundant `foxtrot-stream run` processes publish one shard to one Redis: kill one of them
mid-stream and a consumer of Redis sees no gap beyond the liveness bound, and no duplicate."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from foxtrot_stream.contract.model import Tick, TransportKind
from foxtrot_stream.runtime.feed import liveness_bound
from foxtrot_stream.testing import FAST_SETTINGS
from foxtrot_stream.util.shard import Shard
from foxtrot_stream_binance.simulator import Simulator, SimulatorConfig
from foxtrot_stream_redis.ids import parse_id, stream_key
from foxtrot_stream_redis.source import RedisSource

from redis_helpers import RedisServer

SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "XRPUSDT")
SHARD = Shard(0, 2)
MINE = tuple(SHARD.select(SYMBOLS))  # BTCUSDT, ETHUSDT
#: The liveness bound at FAST_SETTINGS' timings (heartbeat 0.3 s, polling every 0.2 s, a
#: loopback REST answer), plus what a loaded 2-CPU machine adds to a hop through Redis (the
#: conformance kit allows the same 0.5 s).
BOUND = liveness_bound(0.3, 0.2, 0.05) + 0.5


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    config = SimulatorConfig(symbols=SYMBOLS, rate=50.0, ping_interval=0.5, pong_timeout=2.0)
    async with Simulator(config) as s:
        yield s


class FeedProcess:
    """`foxtrot-stream run --format jsonl` in a subprocess; counts the ticks it prints."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.printed: dict[str, int] = dict.fromkeys(SYMBOLS, 0)
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            self.printed[json.loads(line)["symbol"]] += 1

    async def close(self, sig: int) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        code = await asyncio.wait_for(self.proc.wait(), 5)
        await self.reader
        return code


async def start_feed(config: Path, url: str) -> FeedProcess:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "foxtrot_stream", "run", "--config", str(config),
        "--symbols", *SYMBOLS, "--shard", str(SHARD), "--sink", url, "--format", "jsonl",
        "--duration", "30",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    return FeedProcess(proc)


async def until(predicate: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(0.02)


async def test_kill_one_of_two_redundant_feeds_no_gap_no_duplicate(
    sim: Simulator, redis_server: RedisServer, tmp_path: Path
) -> None:
    config = tmp_path / "feed.json"
    values = FAST_SETTINGS | sim.settings() | {"redis.timeout": 0.5, "redis.retry_max": 0.2}
    config.write_text(json.dumps(values), encoding="utf-8")
    source = RedisSource(redis_server.url, "binance", SYMBOLS, start="oldest", block=0.1)
    seen: list[tuple[float, str, Tick]] = []  # (when, entry id, tick)

    async def consume() -> None:
        async for tick in source.ticks():
            key = stream_key("ticks", "binance", tick.symbol)
            seen.append((time.monotonic(), source.last_ids[key], tick))

    reader = asyncio.create_task(consume())
    feeds = await asyncio.gather(*(start_feed(config, redis_server.url) for _ in range(2)))
    try:
        # both streaming their shard, and the consumer reading it
        await until(
            lambda: all(f.printed[s] >= 20 for f in feeds for s in MINE), 6, "both feeds streaming"
        )
        both_up = time.monotonic()
        await asyncio.sleep(0.5)
        killed_at = time.monotonic()
        assert await feeds[0].close(signal.SIGKILL) == -signal.SIGKILL
        survivor_before = dict(feeds[1].printed)
        await asyncio.sleep(1.5)
        assert all(feeds[1].printed[s] >= survivor_before[s] + 30 for s in MINE)
        end = time.monotonic()
        assert await feeds[1].close(signal.SIGTERM) == 0
        await asyncio.sleep(0.3)  # what the survivor wrote last reaches the consumer
    finally:
        for feed in feeds:
            await feed.close(signal.SIGKILL)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await source.aclose()

    assert all(f.printed[s] == 0 for f in feeds for s in SYMBOLS if s not in MINE)
    gaps = {}
    for symbol in SYMBOLS:
        mine = [(at, i, t) for at, i, t in seen if t.symbol == symbol]
        if symbol not in MINE:
            assert mine == []  # another shard's: not published by this one
            continue
        ids = [parse_id(i) for _, i, _ in mine]
        assert ids == sorted(set(ids))  # strictly increasing: no entry twice
        streamed = [t for _, _, t in mine if t.transport is TransportKind.WEBSOCKET]
        keys = [(t.seq, -1 if t.trade_id is None else t.trade_id) for t in streamed]
        assert keys == sorted(set(keys))  # no tick twice, none older after a newer one
        at = [a for a, _, _ in mine if both_up <= a <= end]
        assert any(a > killed_at + 1.0 for a in at)  # the consumer went on after the kill
        gaps[symbol] = max(b - a for a, b in itertools.pairwise(at))
        assert gaps[symbol] < BOUND, (symbol, gaps[symbol], BOUND)
    print(f"consumer read {len(seen)} ticks; longest gap per symbol {gaps} (bound {BOUND:.3f} s)")
