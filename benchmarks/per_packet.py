"""CPU per frame when frames arrive one per packet: the `Feed` on asyncio's loop and on uvloop,
with and without draining aiohttp's parsed frames without a `ws.receive()` per frame.

At real rates a feed's frames arrive one per TCP segment: every frame wakes the event loop,
which runs aiohttp's `data_received`, the reader's waiter, the receiving task's step. That costs
ten times what decoding the frame does (`full_path.py`'s latency test). This script measures it
directly, with `full_path.py`'s sender (own process, pinned to core 0; pre-encoded Binance
combined-stream frames, 75 % bookTicker / 25 % trade, 50 symbols) and receivers in this process
(pinned to core 1), each in a fresh event loop, interleaved round by round (the order rotating):

* `Feed` — a real `Feed` (`WebSocketConnection._read` → Binance handler → `Sequencer` →
  a counting consumer), as `full_path.py`'s full path. Its `_read` drains: after one
  `await ws.receive()`, the data frames aiohttp has already parsed (its queue, `ws._reader`)
  are taken with `await reader.read()`, which returns at once, not one `ws.receive()` each;
* `Feed, no drain` — the same with `_read` replaced by `read_per_frame` below, the loop as it
  was before: one `await ws.receive()` per frame;
* `bare` — a bare aiohttp `ws_connect` loop with no decoding (aiohttp's own floor);

each on `asyncio` (the default loop) and on `uvloop` (when installed). Two modes:

* `paced` (the point of the script): the sender writes `--rate` frames per second (default
  20,000), one write per frame at its due time, for `--seconds` (default 3); TCP_NODELAY on both
  ends, so each frame is its own segment and, at this rate, its own wake-up;
* `burst`: `--burst` frames (default 200,000) written in 256 KiB blocks as fast as the receiver
  takes them, many frames per read: where the drain could pay.

CPU per frame is the process's user + system time (`getrusage`) between the first and the last
tick, over the frames in between; in paced mode the receiving core idles between frames, so
CPU per frame is the cost, and "core busy" its share. p50/p99: one-way latency from the
sender's `time_ns()` before its write to the consumer's `time_ns()` (one machine, one clock;
recording it costs every receiver the same two list appends per frame). "late" is the share of
frames that took over 200 µs: when the machine's other load takes the receiver's core, frames
queue and are read several per wake-up, which makes CPU per frame look cheaper; compare paced
figures only where it is near 0.

Run: `uv run python benchmarks/per_packet.py` (about 100 s: 3 rounds of 6 receivers × 2
modes); `--rounds 7 --seconds 5` for tighter medians; `--modes paced` for one mode.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import logging
import multiprocessing as mp
import os
import socket
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import full_path
from full_path import (
    Meter,
    bare_loop,
    decode_nothing,
    loopback_feed,
    payloads,
    pct,
    symbols,
    ws_frame,
)

from foxtrot_stream.transport import websocket
from foxtrot_stream.transport.websocket import WebSocketConnection

try:
    import uvloop
except ImportError:  # `uv sync` installs it (foxtrot-stream[fast]); without it: asyncio only
    uvloop = None  # type: ignore[assignment]

RATE = 20_000
SECONDS = 3.0
BURST = 200_000
ROUNDS = 3
#: A frame that took longer than this was queued behind others: the receiver fell behind (the
#: machine's other load took its core), and then read several frames per wake-up, which makes
#: its CPU per frame look cheaper than one frame per packet costs.
LATE_NS = 200_000

STOCK_READ = WebSocketConnection._read


async def read_per_frame(
    self: WebSocketConnection, ws: Any, handler: Callable[[str | bytes, int], None]
) -> None:
    """`WebSocketConnection._read` as it was before it drained aiohttp's queue (6d7c6bd):
    one `await ws.receive()` per frame."""
    text, binary = aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY
    now_ns = time.time_ns
    receive = ws.receive
    app_pong = self._app_pong
    while True:
        msg = await receive()
        kind = msg.type
        if kind is text or kind is binary:
            if app_pong is not None and msg.data == app_pong:
                self.listener.pong()
                continue
            self.frames += 1
            handler(msg.data, now_ns())
        elif kind is aiohttp.WSMsgType.PING:
            await ws.pong(msg.data)
        elif kind is aiohttp.WSMsgType.PONG:
            self.listener.pong()
        elif self._failure is not None:
            raise self._failure
        elif self._closing:
            return
        elif kind is aiohttp.WSMsgType.ERROR:
            raise websocket.TransportFailure("dropped", f"connection error: {ws.exception()}")
        else:
            raise websocket.TransportFailure("dropped", f"closed (code {ws.close_code})")


async def feed_receiver(port: int, meter: Meter, syms: list[str], drain: bool) -> None:
    WebSocketConnection._read = STOCK_READ if drain else read_per_frame  # type: ignore[method-assign]
    try:
        feed = loopback_feed(port)
        feed.add_consumer(meter.tick)
        await feed.start(syms)
        try:
            async with asyncio.timeout(120):
                await meter.done.wait()
        finally:
            await feed.stop()
        if feed.counters.malformed or feed.sequencer.counts.stale:
            print(f"  (Feed: {feed.counters}, {feed.sequencer.counts})", file=sys.stderr)
    finally:
        WebSocketConnection._read = STOCK_READ  # type: ignore[method-assign]


def nodelay_sender_main(*args: Any) -> None:
    """`full_path.sender_main` with TCP_NODELAY on the sender's sockets (asyncio sets it on
    its stream transports already; said explicitly so one write is one segment)."""
    real = asyncio.start_server

    async def start_server(cb: Any, *a: Any, **kw: Any) -> asyncio.Server:
        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            sock = w.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await cb(r, w)

        return await real(handle, *a, **kw)

    asyncio.start_server = start_server  # type: ignore[assignment]
    full_path.sender_main(*args)


Receiver = Callable[[int, Meter], Coroutine[Any, Any, None]]


def run_once(
    factory: Callable[[], asyncio.AbstractEventLoop],
    receiver: Receiver,
    port: int,
    jobs: Any,
    results: Any,
    job: tuple[Any, ...],
    n: int,
    record: bool,
) -> tuple[Meter, Any]:
    jobs.put(job)
    with asyncio.Runner(loop_factory=factory) as runner:
        meter = runner.run(_measure(receiver, port, n, record))
    return meter, results.get(True, 30)


async def _measure(receiver: Receiver, port: int, n: int, record: bool) -> Meter:
    meter = Meter(n, record)  # its Event belongs to this loop
    await receiver(port, meter)
    return meter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=RATE, help=f"paced frames/s ({RATE:,})")
    parser.add_argument("--seconds", type=float, default=SECONDS, help=f"paced ({SECONDS:g})")
    parser.add_argument("--burst", type=int, default=BURST, help=f"burst frames ({BURST:,})")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"default {ROUNDS}")
    parser.add_argument(
        "--modes", nargs="+", choices=("paced", "burst"), default=["paced", "burst"]
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    syms = symbols()
    paced_n = int(args.rate * args.seconds)
    total = max(args.burst, paced_n)
    frames, keys = payloads(total, syms)
    wire = [ws_frame(f) for f in frames]
    offsets = [0]
    for w in wire:
        offsets.append(offsets[-1] + len(w))
    blob = b"".join(wire)
    del frames, wire
    index = {k: i for i, k in enumerate(keys[:paced_n])}

    loops: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {"asyncio": asyncio.new_event_loop}
    if uvloop is not None:
        loops["uvloop"] = uvloop.new_event_loop
    else:
        print("uvloop is not installed: asyncio only (uv sync installs it)", file=sys.stderr)
    kinds: dict[str, Receiver] = {
        "Feed": lambda p, m: feed_receiver(p, m, syms, True),
        "Feed, no drain": lambda p, m: feed_receiver(p, m, syms, False),
        "bare aiohttp": lambda p, m: bare_loop(p, m, decode_nothing),
    }
    variants = [(k, lp) for k in kinds for lp in loops]

    ctx = mp.get_context("fork")
    jobs, results = ctx.Queue(), ctx.Queue()
    ready, ready_child = ctx.Pipe(duplex=False)
    sender = ctx.Process(
        target=nodelay_sender_main,
        args=(blob, offsets, syms, jobs, results, ready_child),
        daemon=True,
    )
    sender.start()
    out: dict[tuple[str, str, str], list[dict[str, float]]] = {}
    try:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {full_path.RECEIVER_CORE})
        port = ready.recv()
        print(
            f"{datetime.date.today()}  Python {sys.version.split()[0]}, aiohttp "
            f"{aiohttp.__version__}, uvloop {getattr(uvloop, '__version__', 'absent')}; "
            f"load {os.getloadavg()[0]:.2f}; paced {args.rate:,}/s × {args.seconds:g} s, "
            f"burst {args.burst:,}; {args.rounds} rounds"
        )
        for r in range(args.rounds):
            order = variants[r % len(variants) :] + variants[: r % len(variants)]
            for mode in args.modes:
                for kind, lp in order:
                    if mode == "paced":
                        job: tuple[Any, ...] = ("paced", paced_n, args.rate, 1)
                        n = paced_n
                    else:
                        job, n = ("burst", args.burst), args.burst
                    meter, got = run_once(
                        loops[lp], kinds[kind], port, jobs, results, job, n, mode == "paced"
                    )
                    res = meter.result()
                    if mode == "paced":
                        sent = got[1]
                        one_way = [
                            at - sent[index[k]] for k, at in zip(meter.keys, meter.at, strict=True)
                        ]
                        res["p50"] = pct(one_way, 0.5)
                        res["p99"] = pct(one_way, 0.99)
                        res["late"] = sum(w > LATE_NS for w in one_way) / len(one_way)
                    out.setdefault((mode, kind, lp), []).append(res)
                    print(
                        f"  round {r + 1} {mode:<5} {kind:<14} {lp:<8} "
                        f"{res['cpu_us']:6.2f} µs/frame  {res['rate'] / 1000:6.1f}k/s"
                        + (f"  late {res['late'] * 100:4.1f}%" if mode == "paced" else ""),
                        flush=True,
                    )
    finally:
        sender.terminate()
        sender.join(5)

    print(f"\nload after: {os.getloadavg()[0]:.2f}; medians of {args.rounds} rounds (min–max)")
    print(
        f"late: frames that took over {LATE_NS // 1000} µs (queued: the receiver fell behind "
        "and read several per wake-up, so its CPU per frame is understated); compare paced "
        "rows only where late is near 0"
    )
    for mode in args.modes:
        print(f"\n{mode}:")
        print(
            f"  {'receiver':<14} {'loop':<8} {'CPU/frame':>19} {'user':>7} {'sys':>7} "
            f"{'busy':>5}"
            + (f" {'p50':>7} {'p99':>7} {'late':>5}" if mode == "paced" else f" {'frames/s':>9}")
        )
        med: dict[tuple[str, str], float] = {}
        for kind, lp in variants:
            rows = out[(mode, kind, lp)]

            def m(field: str, rows: list[dict[str, float]] = rows) -> float:
                return statistics.median(x[field] for x in rows)

            cpus = [x["cpu_us"] for x in rows]
            med[(kind, lp)] = m("cpu_us")
            tail = (
                f" {m('p50'):5.1f}µs {m('p99'):5.0f}µs {m('late') * 100:4.1f}%"
                if mode == "paced"
                else f" {m('rate') / 1000:8.0f}k"
            )
            print(
                f"  {kind:<14} {lp:<8} {m('cpu_us'):6.2f} ({min(cpus):5.2f}–{max(cpus):5.2f})µs "
                f"{m('user_us'):5.2f}µs {m('sys_us'):5.2f}µs {m('cpu_share') * 100:4.0f}%" + tail
            )
        for lp in loops:
            print(
                f"  {lp}: Feed / bare = {med[('Feed', lp)] / med[('bare aiohttp', lp)]:.2f} "
                f"(CPU per frame); Feed / Feed, no drain = "
                f"{med[('Feed', lp)] / med[('Feed, no drain', lp)]:.3f}"
            )
        if "uvloop" in loops:
            for kind in kinds:
                print(
                    f"  {kind}: uvloop / asyncio = "
                    f"{med[(kind, 'uvloop')] / med[(kind, 'asyncio')]:.3f}"
                )


if __name__ == "__main__":
    main()
