"""The whole receive path over a real socket: the `Feed` against bare aiohttp receive loops.

One run, one pre-encoded stream of Binance combined-stream frames (75 % bookTicker, 25 % trade,
50 symbols, increasing `u` and trade ids), sent over 127.0.0.1 WebSocket to five receivers:

1. the full path: a real `Feed` (WebSocketConnection._read → Binance handler → Sequencer →
   its delivery) with a no-op consumer that counts ticks;
2. bare aiohttp `ws_connect` + `json.loads` of each frame;
3. bare aiohttp `ws_connect` + `orjson.loads` + a typed `Tick` per bookTicker (floats): the
   issue's yardstick;
4. bare aiohttp `ws_connect` + the Binance handler's own msgspec decoder + a typed `Tick` per
   bookTicker: what the framework costs beyond its decoder;
5. bare aiohttp `ws_connect` alone (only a `str.find` for the frame's key), aiohttp's floor.

The sender is a plain asyncio server in its own process, pinned to core 0, that does the
WebSocket handshake itself and writes pre-encoded server frames in 256 KiB blocks (it also
answers `GET /api/v3/exchangeInfo`, which the feed calls at start). The receivers run in this
process, pinned to core 1. Throughput: each receiver gets a burst of `--frames` frames as fast
as it can take them; rate and CPU are taken between its first and last frame. Latency: the
sender paces frames at a fixed rate (busy-waiting, one write per frame) and records the
wall-clock send time of each one; the receiver records `time.time_ns()` when the tick reaches
its consumer (full path: in the consumer, after handler + sequencer; bare: after decoding /
building the tick), and for the full path also `tick.received_ts` (stamped by `_read` right
after `ws.receive()` returns, before decoding). Frames are matched by `u` (bookTicker) or trade
id, so the one-way latency is receive time minus that frame's send time, on one machine's clock.

Run: `uv run python benchmarks/full_path.py` (about 95 s). `--only full --no-latency` runs
the full path alone, e.g. under `python -m cProfile -s tottime`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import contextlib
import datetime
import hashlib
import json
import logging
import multiprocessing as mp
import os
import random
import resource
import statistics
import sys
import time
from array import array
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from typing import Any

import aiohttp
import orjson

from foxtrot_stream.config.settings import load
from foxtrot_stream.contract.model import Tick, TransportKind
from foxtrot_stream.contract.plugins import PluginHost
from foxtrot_stream.runtime.feed import Feed
from foxtrot_stream_binance.adapter import _decode_combined

N_SYMBOLS = 50  # 100 streams: all in the URL, no SUBSCRIBE message
BURST = 500_000
ROUNDS = 5
LATENCY_RATE = 20_000
LATENCY_SECONDS = 5.0
CHUNK = 256 * 1024
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SENDER_CORE, RECEIVER_CORE = 0, 1
U0, T0 = 400_900_000, 1_000

# --- the stream ----------------------------------------------------------------------------


def symbols() -> list[str]:
    return [f"S{i:02d}USDT" for i in range(N_SYMBOLS)]


def payloads(n: int, syms: list[str], seed: int = 7) -> tuple[list[bytes], list[int]]:
    """Frames and their keys (`u` of a bookTicker, `-t` of a trade). Every symbol's first frame
    is a bookTicker, so every frame makes exactly one tick on the full path."""
    rng = random.Random(seed)
    out: list[bytes] = []
    keys: list[int] = []
    u, t = U0, T0
    for i in range(n):
        sym = syms[i] if i < len(syms) else syms[rng.randrange(len(syms))]
        low = sym.lower()
        if i >= len(syms) and i % 4 == 3:
            t += 1
            payload = (
                f'{{"e":"trade","E":1672515782136,"s":"{sym}","t":{t},'
                f'"p":"25.{3500 + i % 97:04d}0000",'
                f'"q":"1.00000000","T":1672515782134,"m":true,"M":true}}'
            )
            out.append(f'{{"stream":"{low}@trade","data":{payload}}}'.encode())
            keys.append(-t)
        else:
            u += 1
            payload = (
                f'{{"u":{u},"s":"{sym}","b":"25.{3500 + i % 97:04d}0000","B":"31.21000000",'
                f'"a":"25.{3600 + i % 89:04d}0000","A":"40.66000000"}}'
            )
            out.append(f'{{"stream":"{low}@bookTicker","data":{payload}}}'.encode())
            keys.append(u)
    return out, keys


def ws_frame(payload: bytes) -> bytes:
    """An unmasked, final server text frame."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


# --- the sender (its own process, core 0) --------------------------------------------------


class Sender:
    def __init__(
        self, blob: bytes, offsets: list[int], syms: list[str], jobs: Any, results: Any
    ) -> None:
        self.view = memoryview(blob)
        self.offsets = offsets
        self.jobs = jobs
        self.results = results
        info = {"symbols": [{"symbol": s, "status": "TRADING"} for s in syms]}
        self.exchange_info = json.dumps(info).encode()

    async def serve(self, ready: Connection) -> None:
        server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        ready.send(server.sockets[0].getsockname()[1])
        async with server:
            await server.serve_forever()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("upgrade", "").lower() != "websocket":
            path = head[0].split()[1]
            if path.startswith("/api/v3/exchangeInfo"):
                status, body = "200 OK", self.exchange_info
            else:
                status, body = "404 Not Found", b'{"code":-1,"msg":"not simulated"}'
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            writer.close()
            return
        digest = hashlib.sha1((headers["sec-websocket-key"] + GUID).encode()).digest()
        accept = base64.b64encode(digest).decode()
        writer.write(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
        )
        writer.transport.set_write_buffer_limits(high=4 * CHUNK)
        job = self.jobs.get(timeout=30)
        incoming = asyncio.create_task(self.discard(reader, writer))
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if job[0] == "burst":
            await self.burst(writer, job[1])
            self.results.put(("burst", time.process_time() - cpu0, time.perf_counter() - wall0))
        else:
            sent = self.paced(writer, job[1], job[2], job[3])
            await writer.drain()
            self.results.put(("paced", sent))
        await incoming  # until the client closes

    async def burst(self, writer: asyncio.StreamWriter, n: int) -> None:
        offsets, view = self.offsets, self.view
        pos, end = offsets[0], offsets[n]
        while pos < end:
            # cut at a frame boundary, so a pong written meanwhile never splits a frame
            cut = offsets[min(n, max(bisect.bisect_right(offsets, pos + CHUNK) - 1, 1))]
            if cut <= pos:
                cut = offsets[bisect.bisect_right(offsets, pos)]
            writer.write(view[pos:cut])
            await writer.drain()
            pos = cut

    def paced(self, writer: asyncio.StreamWriter, n: int, rate: float, batch: int) -> array[int]:
        """`batch` frames per write at their due time: sleep until 0.2 ms before, then spin."""
        offsets, view, write = self.offsets, self.view, writer.transport.write
        clock, now_ns = time.perf_counter_ns, time.time_ns
        sent = array("q", bytes(8 * n))
        step = 1e9 / rate
        start = clock() + 10_000_000
        for i in range(0, n, batch):
            due = start + int(i * step)
            if (ahead := due - clock() - 200_000) > 0:
                time.sleep(ahead / 1e9)
            while clock() < due:
                pass
            j = min(n, i + batch)
            stamp = now_ns()
            for k in range(i, j):
                sent[k] = stamp
            write(view[offsets[i] : offsets[j]])
        return sent

    async def discard(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read the client's frames: answer pings and the close handshake, drop the rest."""
        try:
            while True:
                opcode, data = await read_client_frame(reader)
                if opcode == 0x8:
                    writer.write(b"\x88\x02\x03\xe8")
                    await writer.drain()
                    break
                if opcode == 0x9 and len(data) < 126:
                    writer.write(bytes((0x8A, len(data))) + data)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the receiver went away mid-frame: this connection's job is over
        writer.close()
        with contextlib.suppress(ConnectionError):  # a reset peer: the socket is closed anyway
            await writer.wait_closed()


async def read_client_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One WebSocket frame from the client (masked, as clients send them): (opcode, payload)."""
    b0, b1 = await reader.readexactly(2)
    length = b1 & 0x7F
    if length == 126:
        length = int.from_bytes(await reader.readexactly(2), "big")
    elif length == 127:
        length = int.from_bytes(await reader.readexactly(8), "big")
    mask = await reader.readexactly(4) if b1 & 0x80 else b"\0\0\0\0"
    raw = await reader.readexactly(length)
    return b0 & 0x0F, bytes(c ^ mask[i % 4] for i, c in enumerate(raw))


def sender_main(
    blob: bytes, offsets: list[int], syms: list[str], jobs: Any, results: Any, ready: Connection
) -> None:
    with contextlib.suppress(OSError):  # no such core here: the sender runs unpinned
        os.sched_setaffinity(0, {SENDER_CORE})
    asyncio.run(Sender(blob, offsets, syms, jobs, results).serve(ready))


# --- the receivers (this process, core 1) ----------------------------------------------------


class Meter:
    """Counts frames/ticks; marks time and CPU at the first and the `n`-th."""

    def __init__(self, n: int, record: bool) -> None:
        self.n = n
        self.count = 0
        self.record = record
        self.keys: list[int] = []
        self.at: list[int] = []
        self.stamped: list[int] = []
        self.t0 = self.t1 = 0.0
        self.r0: resource.struct_rusage | None = None
        self.r1: resource.struct_rusage | None = None
        self.done = asyncio.Event()

    def first(self) -> None:
        self.t0 = time.perf_counter()
        self.r0 = resource.getrusage(resource.RUSAGE_SELF)

    def last(self) -> None:
        self.t1 = time.perf_counter()
        self.r1 = resource.getrusage(resource.RUSAGE_SELF)
        self.done.set()

    def tick(self, tick: Tick) -> None:
        """The full path's consumer."""
        self.count += 1
        if self.record:
            now = time.time_ns()
            key = tick.seq if tick.exchange_ts is None else -(tick.trade_id or 0)
            self.keys.append(key or 0)
            self.at.append(now)
            self.stamped.append(tick.received_ts)
        if self.count == 1:
            self.first()
        if self.count == self.n:
            self.last()

    def result(self) -> dict[str, float]:
        assert self.r0 is not None and self.r1 is not None
        wall = self.t1 - self.t0
        user = self.r1.ru_utime - self.r0.ru_utime
        sys_ = self.r1.ru_stime - self.r0.ru_stime
        frames = self.n - 1
        return {
            "rate": frames / wall,
            "cpu_us": (user + sys_) / frames * 1e6,
            "user_us": user / frames * 1e6,
            "sys_us": sys_ / frames * 1e6,
            "cpu_share": (user + sys_) / wall,
        }


Receiver = Callable[[int, Meter], Awaitable[None]]


def loopback_feed(port: int) -> Feed:
    """A real `Feed` of the Binance adapter pointed at a sender on 127.0.0.1:`port` (a long
    heartbeat interval: a burst is not interrupted by pings)."""
    host = PluginHost.discover()
    values = {
        "websocket.enabled": True,
        "websocket.heartbeat.interval": 300.0,
        "binance.ws_url": f"ws://127.0.0.1:{port}",
        "binance.rest_url": f"http://127.0.0.1:{port}",
    }
    settings = load(text=json.dumps(values), schema=host.schema()).settings
    return Feed(host, settings, "binance", connect_budgets={})


async def full_path(port: int, meter: Meter, syms: list[str]) -> None:
    feed = loopback_feed(port)
    feed.add_consumer(meter.tick)
    await feed.start(syms)
    try:
        async with asyncio.timeout(120):
            await meter.done.wait()
    finally:
        await feed.stop()
    if feed.counters.malformed or feed.sequencer.counts.stale or feed.sequencer.counts.duplicate:
        print(f"  (full path: {feed.counters}, {feed.sequencer.counts})", file=sys.stderr)


async def bare_loop(port: int, meter: Meter, decode: Callable[[str], int]) -> None:
    text = aiohttp.WSMsgType.TEXT
    record, n = meter.record, meter.n
    now_ns = time.time_ns
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"ws://127.0.0.1:{port}/stream", max_msg_size=16 << 20) as ws,
    ):
        receive = ws.receive
        count = 0
        async with asyncio.timeout(120):
            while count < n:
                msg = await receive()
                if msg.type is not text:
                    raise RuntimeError(f"unexpected {msg.type}: {msg.data!r}")
                key = decode(msg.data)
                count += 1
                if record:
                    meter.at.append(now_ns())
                    meter.keys.append(key)
                if count == 1:
                    meter.first()
        meter.count = count
        meter.last()


def decode_json(frame: str, loads: Callable[[str], Any] = json.loads) -> int:
    d = loads(frame)["data"]
    key: int = d["u"] if "u" in d else -d["t"]
    return key


def decode_orjson_tick(
    frame: str,
    loads: Callable[[str], Any] = orjson.loads,
    ws: TransportKind = TransportKind.WEBSOCKET,
) -> int:
    d = loads(frame)["data"]
    if "b" in d:
        u: int = d["u"]
        Tick(
            "binance",
            d["s"],
            float(d["b"]),
            float(d["B"]),
            float(d["a"]),
            float(d["A"]),
            None,
            u,
            None,
            None,
            time.time_ns(),
            ws,
        )
        return u
    t: int = d["t"]
    return -t


def decode_msgspec_tick(
    frame: str,
    decode: Callable[[str], Any] = _decode_combined,
    ws: TransportKind = TransportKind.WEBSOCKET,
) -> int:
    """The Binance handler's own decoder (msgspec, typed, prices parsed in C) and a `Tick`
    per bookTicker, as `decode_orjson_tick` does: what the full path costs beyond its decoder."""
    d = decode(frame).data
    u = d.u
    if u is not None:
        Tick("binance", d.s, d.b, d.B, d.a, d.A, None, u, None, None, time.time_ns(), ws)
        return u  # type: ignore[no-any-return]
    return -d.t  # type: ignore[no-any-return]


def decode_nothing(frame: str) -> int:
    """aiohttp's own cost: a key from the frame's fixed layout, no JSON parsing."""
    i = frame.find('"u":')
    if i >= 0:
        return int(frame[i + 4 : frame.index(",", i)])
    i = frame.find('"t":')
    return -int(frame[i + 4 : frame.index(",", i)])


# --- orchestration -----------------------------------------------------------------------------


def pct(values: list[int], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] / 1000


async def measure(
    name: str,
    run: Receiver,
    port: int,
    jobs: Any,
    results: Any,
    job: tuple[Any, ...],
    n: int,
    record: bool,
) -> tuple[Meter, Any]:
    jobs.put(job)
    meter = Meter(n, record)
    await run(port, meter)
    got = await asyncio.get_running_loop().run_in_executor(None, results.get, True, 30)
    return meter, got


async def run_all(
    args: argparse.Namespace, port: int, jobs: Any, results: Any, keys: list[int], syms: list[str]
) -> None:
    receivers: dict[str, Receiver] = {
        "full path (Feed)": lambda p, m: full_path(p, m, syms),
        "bare aiohttp + json.loads": lambda p, m: bare_loop(p, m, decode_json),
        "bare aiohttp + orjson + Tick": lambda p, m: bare_loop(p, m, decode_orjson_tick),
        "bare aiohttp + msgspec + Tick": lambda p, m: bare_loop(p, m, decode_msgspec_tick),
        "bare aiohttp, no decoding": lambda p, m: bare_loop(p, m, decode_nothing),
    }
    short = dict(zip(("full", "json", "orjson", "msgspec", "receive"), receivers, strict=True))
    if args.only:
        receivers = {short[args.only]: receivers[short[args.only]]}
    n = args.frames
    through: dict[str, list[dict[str, float]]] = {k: [] for k in receivers}
    sender_share: list[float] = []
    for r in range(args.rounds):
        for name, run in receivers.items():
            meter, got = await measure(name, run, port, jobs, results, ("burst", n), n, False)
            res = meter.result()
            through[name].append(res)
            _, s_cpu, s_wall = got
            sender_share.append(s_cpu / s_wall)
            print(f"  round {r + 1} {name:<30} {res['rate'] / 1000:7.0f}k frames/s", flush=True)
    med = {k: {f: statistics.median(x[f] for x in v) for f in v[0]} for k, v in through.items()}

    lat: dict[str, dict[str, float]] = {}
    if not args.no_latency:
        m = int(LATENCY_RATE * LATENCY_SECONDS)
        index = {k: i for i, k in enumerate(keys[:m])}
        for name, run in receivers.items():
            job = ("paced", m, LATENCY_RATE, args.batch)
            meter, got = await measure(name, run, port, jobs, results, job, m, True)
            sent = got[1]
            one_way = [at - sent[index[k]] for k, at in zip(meter.keys, meter.at, strict=True)]
            lat[name] = {
                "cpu_us": meter.result()["cpu_us"],
                "sys_us": meter.result()["sys_us"],
                "p50": pct(one_way, 0.5),
                "p99": pct(one_way, 0.99),
                "max": pct(one_way, 1.0),
                "n": len(one_way),
            }
            if meter.stamped:
                wire = [
                    st - sent[index[k]] for k, st in zip(meter.keys, meter.stamped, strict=True)
                ]
                lat[name + " @received_ts"] = {
                    "cpu_us": float("nan"),
                    "sys_us": float("nan"),
                    "p50": pct(wire, 0.5),
                    "p99": pct(wire, 0.99),
                    "max": pct(wire, 1.0),
                    "n": len(wire),
                }

    print()
    print(
        f"throughput: {n:,} frames per burst, median of {args.rounds} rounds; sender on core "
        f"{SENDER_CORE}, receiver on core {RECEIVER_CORE}; sender busy "
        f"{max(sender_share) * 100:.0f} % of its core at most"
    )
    print(
        f"  {'receiver':<30} {'frames/s':>10} {'CPU/frame':>10} {'user':>8} {'sys':>8} "
        f"{'core busy':>9}"
    )
    for name, res in med.items():
        print(
            f"  {name:<30} {res['rate'] / 1000:9.0f}k {res['cpu_us']:8.2f}µs "
            f"{res['user_us']:6.2f}µs {res['sys_us']:6.2f}µs {res['cpu_share'] * 100:8.0f}%"
        )
    full = med.get("full path (Feed)")
    if full is not None and len(med) == len(short):
        for label, other in (
            ("bare json", "bare aiohttp + json.loads"),
            ("bare orjson + Tick", "bare aiohttp + orjson + Tick"),
            ("bare msgspec + Tick", "bare aiohttp + msgspec + Tick"),
            ("bare receive only", "bare aiohttp, no decoding"),
        ):
            print(f"  full / {label:<18} = {full['rate'] / med[other]['rate']:.2f}")
    if lat:
        print()
        print(
            f"one-way latency at {LATENCY_RATE:,} frames/s ({args.batch} per write) for "
            f"{LATENCY_SECONDS:g} s (send: "
            "the sender's time_ns before its write; receive: time_ns in the consumer)"
        )
        print(
            f"  {'receiver':<44} {'p50':>8} {'p99':>8} {'max':>9} {'frames':>7} "
            f"{'CPU/frame':>9} {'sys':>8}"
        )
        for name, v in lat.items():
            cpu = f"{v['cpu_us']:7.2f}µs {v['sys_us']:6.2f}µs" if v["cpu_us"] == v["cpu_us"] else ""
            print(
                f"  {name:<44} {v['p50']:6.0f}µs {v['p99']:6.0f}µs {v['max']:7.0f}µs "
                f"{v['n']:7.0f} {cpu:>18}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=BURST)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--only", choices=("full", "json", "orjson", "msgspec", "receive"))
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument(
        "--batch", type=int, default=1, help="frames per write in the latency test (default 1)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    syms = symbols()
    total = max(args.frames, int(LATENCY_RATE * LATENCY_SECONDS))
    frames, keys = payloads(total, syms)
    wire = [ws_frame(f) for f in frames]
    offsets = [0]
    for w in wire:
        offsets.append(offsets[-1] + len(w))
    blob = b"".join(wire)
    del frames, wire
    ctx = mp.get_context("fork")
    jobs, results = ctx.Queue(), ctx.Queue()
    ready, ready_child = ctx.Pipe(duplex=False)
    sender = ctx.Process(
        target=sender_main, args=(blob, offsets, syms, jobs, results, ready_child), daemon=True
    )
    sender.start()
    try:
        os.sched_setaffinity(0, {RECEIVER_CORE})
        port = ready.recv()
        size = len(blob) / len(offsets)
        print(
            f"{datetime.date.today()}  Python {sys.version.split()[0]}, aiohttp "
            f"{aiohttp.__version__}, {N_SYMBOLS} symbols, {size:.0f} B/frame"
        )
        asyncio.run(run_all(args, port, jobs, results, keys, syms))
    finally:
        sender.terminate()
        sender.join(5)


if __name__ == "__main__":
    main()
