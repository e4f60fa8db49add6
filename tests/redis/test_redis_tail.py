"""`foxtrot-stream tail redis://…` (and `python -m foxtrot_stream_redis tail`) print what `run
--format jsonl` printed for the same ticks."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
import redis.asyncio as aioredis

from foxtrot_stream.contract.model import Tick, TransportKind
from foxtrot_stream.surfaces.cli import main
from foxtrot_stream_redis.__main__ import main as plugin_main
from foxtrot_stream_redis.ids import stream_key
from foxtrot_stream_redis.sink import entry

from redis_helpers import RedisServer


def ticks() -> list[Tick]:
    now = time.time_ns()
    return [Tick("binance", s, 100.5 + i, 0.25, 101.0 + i, 2.0, 100.75 if i % 2 else None, i,
                 i if i % 3 else None, 1_700_000_000_000 + i, now + i, TransportKind.WEBSOCKET)
            for i in range(1, 21) for s in ("BTCUSDT", "ETHUSDT")]  # fmt: skip


async def publish(url: str, written: list[Tick]) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        for t in written:
            key = stream_key("ticks", "binance", t.symbol)
            await client.xadd(key, entry(t), id=f"{t.seq}-0")  # type: ignore[arg-type]
    finally:
        await client.aclose()


def test_tail_prints_the_json_lines_run_prints(
    redis_server: RedisServer, capfd: pytest.CaptureFixture[str]
) -> None:
    written = ticks()
    asyncio.run(publish(redis_server.url, written))
    url = redis_server.url.replace("redis://", "redis://:@")  # an (empty) password: redacted
    args = [url, "--symbols", "btcusdt", "ETHUSDT", "--from", "oldest", "--duration", "0.4"]
    assert main(["tail", *args, "--format", "jsonl"]) == 0
    lines = capfd.readouterr().out.splitlines()
    expected = [orjson.dumps(t.to_json_dict()).decode() for t in written]
    for symbol in ("BTCUSDT", "ETHUSDT"):
        mine = [x for x in lines if f'"{symbol}"' in x]
        assert mine == [x for x in expected if f'"{symbol}"' in x]
    assert plugin_main(["tail", *args, "--group", "g", "--consumer", "c1"]) == 0  # jsonl
    assert sorted(capfd.readouterr().out.splitlines()) == sorted(expected)
    # the group has them all: a second reader of it gets none
    assert plugin_main(["tail", *args, "--group", "g", "--consumer", "c2"]) == 0
    assert capfd.readouterr().out == ""


def test_tail_table_shows_the_symbols(
    redis_server: RedisServer, capfd: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(publish(redis_server.url, ticks()))
    args = ["tail", redis_server.url, "--symbols", "BTCUSDT", "--from", "oldest"]
    assert main([*args, "--duration", "0.4"]) == 0
    out = capfd.readouterr().out
    assert "BTCUSDT" in out and "120.5" in out and "redis" in out
    assert "BinanceAdapter: stopped from redis redis://" in out  # after the source closed
    assert "down" not in out  # no connection of its own to be down: its uptime reads "—"
