"""The Redis Streams sink: throughput and CPU per tick, the cost of a refused duplicate, and the
end-to-end latency simulator → feed → Redis → consumer.

Starts its own `redis-server` on a free loopback port (no persistence) and stops it at the end.

(a) Throughput, in this process: `--ticks` synthetic ticks (50 symbols, increasing book update
ids, a trade on every fourth) handed to a `RedisSink` (`redis.batch` 1,000 per pipelined
`XADD … MAXLEN ~`), as fast as it writes them. Reported: ticks/s, this process's CPU per tick
(`put`, the entry id, building and sending the pipeline, reading the replies: the sink-side
cost in a feed process) and redis-server's CPU per tick (utime + stime from /proc/<pid>/stat),
Redis memory per stored entry (`INFO memory`). Then a second sink writes the same ticks again,
as a redundant feed does: every `XADD` is refused, and the same figures give what a refused
duplicate costs Redis (CPU per refused `XADD`, memory: nothing stored).

(b) Latency: the Binance simulator (`foxtrot-stream simulate binance`) and a feed
(`foxtrot-stream run --sink redis://…`) in their own processes, a `RedisSource` here reading
every stream. Per tick: the consumer's `time.time_ns()` minus `Tick.received_ts` (stamped by
the feed right after the frame arrived: feed → sink → Redis → consumer) and, for trade ticks,
minus the exchange event time `E` the simulator stamps when it sends (ms resolution, so it
reads up to 1 ms high). One machine, one clock.

Run: `uv run python benchmarks/redis_sink.py` (about 40 s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from foxtrot_stream.config.settings import PositiveInt
from foxtrot_stream.contract.model import Tick, TransportKind
from foxtrot_stream_redis.settings import RedisSettings
from foxtrot_stream_redis.sink import RedisSink
from foxtrot_stream_redis.source import RedisSource

TICK_SECONDS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def proc_cpu(pid: int) -> float:
    """Seconds of CPU (user + system) process `pid` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK_SECONDS


def wait_for_port(port: int, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {within} s")


def start_redis(directory: str) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no", "--dir", directory, "--loglevel", "warning"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for_port(port, 5)
    return proc, f"redis://127.0.0.1:{port}/0"


def make_ticks(n: int, symbols: int) -> list[Tick]:
    names = [f"S{i:04d}USDT" for i in range(symbols)]
    now = time.time_ns()
    out = []
    for i in range(n):
        seq = 1_000_000 + i // symbols
        trade = seq if i % 4 == 0 else None
        out.append(
            Tick("binance", names[i % symbols], 100.0 + i % 7, 1.5, 100.5 + i % 7, 2.25, None,
                 seq, trade, None, now + i, TransportKind.WEBSOCKET)
        )  # fmt: skip
    return out


async def used_memory(url: str) -> int:
    client = aioredis.Redis.from_url(url)
    try:
        info: dict[str, Any] = await client.info("memory")
        return int(info["used_memory"])
    finally:
        await client.aclose()


async def push(ticks: list[Tick], url: str, redis_pid: int) -> dict[str, float]:
    """All of `ticks` through one sink; what it cost this process and redis-server."""
    settings = RedisSettings(
        enabled=True, url=url, buffer=PositiveInt(len(ticks)), batch=PositiveInt(1000)
    )
    sink = RedisSink(settings, "binance")
    await sink.start()
    mem0, cpu0, rcpu0 = await used_memory(url), time.process_time(), proc_cpu(redis_pid)
    t0 = time.perf_counter()
    for i in range(0, len(ticks), 1000):  # as a feed hands them over: a batch per loop turn
        for tick in ticks[i : i + 1000]:
            sink.put(tick)
        await asyncio.sleep(0)
    # the sink has no "all written" event; a 5 ms poll costs this process next to nothing
    while sink.written + sink.duplicates < len(ticks):  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - t0
    cpu, rcpu = time.process_time() - cpu0, proc_cpu(redis_pid) - rcpu0
    await sink.stop()
    health = sink.health()
    assert health["dropped"] == 0 and health["errors"] == 0, health
    return {
        "ticks": len(ticks),
        "written": sink.written,
        "refused": sink.duplicates,
        "seconds": elapsed,
        "rate": len(ticks) / elapsed,
        "sink_us": cpu / len(ticks) * 1e6,
        "per_core": len(ticks) / cpu,
        "redis_us": rcpu / len(ticks) * 1e6,
        "redis_cpu_share": rcpu / elapsed,
        "memory": await used_memory(url) - mem0,
    }


async def throughput(url: str, redis_pid: int, n: int) -> None:
    client = aioredis.Redis.from_url(url)
    await client.flushall()
    await client.aclose()
    ticks = make_ticks(n, 50)
    await push(make_ticks(20_000, 5), url, redis_pid)  # warm up: connections, code paths
    client = aioredis.Redis.from_url(url)
    await client.flushall()
    await client.aclose()
    first = await push(ticks, url, redis_pid)
    again = await push(ticks, url, redis_pid)
    print(f"(a) {n:,} ticks, 50 symbols, batch 1,000, loopback")
    for name, r in (("written", first), ("refused (a redundant feed)", again)):
        print(
            f"  {name:<28} {r['rate']:>9,.0f} ticks/s  sink CPU {r['sink_us']:5.2f} µs/tick "
            f"({r['per_core']:,.0f} ticks per CPU-second)  redis-server CPU "
            f"{r['redis_us']:5.2f} µs/tick (busy {r['redis_cpu_share']:.0%})  Redis memory "
            f"{r['memory'] / r['ticks']:+.1f} B/tick"
        )
    assert first["written"] == n and again["refused"] == n


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


SYMBOLS = [f"S{i:04d}USDT" for i in range(20)]


def start_pipeline(
    url: str, rate: float, seconds: float, tmp: str
) -> list[subprocess.Popen[bytes]]:
    """The simulator and a feed publishing to `url`, each in its own process."""
    sim_port = free_port()
    sim = subprocess.Popen(
        [sys.executable, "-m", "foxtrot_stream", "simulate", "binance", "--port", str(sim_port),
         "--symbols", *SYMBOLS, "--rate", f"{rate / len(SYMBOLS):g}",
         "--duration", str(seconds + 20)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    config = Path(tmp) / "feed.json"
    config.write_text(
        json.dumps(
            {
                "websocket.enabled": True,
                "binance.ws_url": f"ws://127.0.0.1:{sim_port}",
                "binance.rest_url": f"http://127.0.0.1:{sim_port}",
            }
        )
    )
    wait_for_port(sim_port, 10)
    feed = subprocess.Popen(
        [sys.executable, "-m", "foxtrot_stream", "run", "--config", str(config),
         "--symbols", *SYMBOLS, "--sink", url, "--duration", str(seconds + 15)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return [sim, feed]


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in reversed(procs):
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


async def latency(url: str, redis_pid: int, feed_pid: int, rate: float, seconds: float) -> None:
    source = RedisSource(url, "binance", SYMBOLS, start="now", block=1.0)
    to_consumer: list[float] = []
    from_exchange: list[float] = []
    cpu0: tuple[float, float] | None = None
    started = 0.0
    warm = time.monotonic() + 3.0  # the feed started, its symbols moved to the WebSocket
    end = warm + seconds
    try:
        async with asyncio.timeout(seconds + 15):
            async for tick in source.ticks():
                now = time.time_ns()
                t = time.monotonic()
                if t < warm or tick.transport is not TransportKind.WEBSOCKET:
                    continue
                if cpu0 is None:
                    cpu0 = (proc_cpu(feed_pid), proc_cpu(redis_pid))
                    started = t
                if t > end:
                    break
                to_consumer.append((now - tick.received_ts) / 1e6)
                if tick.exchange_ts is not None:
                    from_exchange.append((now - tick.exchange_ts * 1_000_000) / 1e6)
        assert cpu0 is not None, "no tick reached the consumer"
        span = time.monotonic() - started
        feed_cpu = (proc_cpu(feed_pid) - cpu0[0]) / span
        redis_cpu = (proc_cpu(redis_pid) - cpu0[1]) / span
    finally:
        await source.aclose()
    print(
        f"(b) simulator → feed → Redis → RedisSource, {len(SYMBOLS)} symbols, asked "
        f"{rate:,.0f} book updates/s, measured {len(to_consumer) / span:,.0f} ticks/s over "
        f"{span:.1f} s ({len(to_consumer):,} ticks); feed process CPU {feed_cpu:.0%}, "
        f"redis-server {redis_cpu:.0%}"
    )
    for name, values in (
        ("received_ts → consumer (feed, sink, Redis, XREAD)", to_consumer),
        ("exchange send (E, ms) → consumer, trade ticks", from_exchange),
    ):
        print(
            f"  {name:<52} p50 {statistics.median(values):6.2f} ms  p99 "
            f"{percentile(values, 0.99):6.2f} ms  max {max(values):6.2f} ms  (n={len(values):,})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--ticks", type=int, default=200_000, help="ticks for (a)")
    parser.add_argument("--rate", type=float, default=2000.0, help="book updates/s for (b)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds of (b)")
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        redis, url = start_redis(tmp)
        try:
            asyncio.run(throughput(url, redis.pid, args.ticks))
            procs = start_pipeline(url, args.rate, args.seconds, tmp)
            try:
                asyncio.run(latency(url, redis.pid, procs[1].pid, args.rate, args.seconds))
            finally:
                stop(procs)
        finally:
            stop([redis])
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
