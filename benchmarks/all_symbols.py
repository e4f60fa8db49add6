"""`foxtrot-stream run --all` at the exchange's scale: CPU, memory over time, per-symbol delivery.

The bundled Binance simulator lists `--symbols` trading symbols (default 2,000: BTCUSDT and
synthetic ones) and publishes `--rate` book updates per symbol per second (default 10), 30 %
of them with a trade (the simulator's `trade_ratio`): about 26,000 frames/s in all, a busy day
on Binance Spot's whole market. It runs in its own process (pinned to core 0 when there are
two); the feed is the real command, `foxtrot-stream run --all --format jsonl` (stdout to
/dev/null, so the JSON lines are written but not read), in another process (core 1), with
`--serve` so its own `/status` can be read once at the end for the per-symbol tick counts and
the connections.

Measured:
* CPU % of one core of the feed process: utime + stime from /proc/PID/stat, over the steady
  state (from `--warmup` seconds after start, when every symbol is subscribed, to the end; the
  one `/status` request is made after that window), and the simulator's own, with the frames it
  sent meanwhile: if its core is near 100 % it could not produce the rate, and the achieved
  rate is what counts;
* RSS (VmRSS from /proc/PID/status) every `--sample` seconds (default 10);
* per-symbol delivery from `/status`: symbols with at least one tick, min / median / max ticks
  per symbol, against what the simulator sent in all.

Run: `uv run python benchmarks/all_symbols.py` (about 75 s: 60 s of streaming);
`--duration 300` for the 5-minute RSS check; `--loop asyncio|uvloop` and `--format table`
are passed to `run`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import multiprocessing as mp
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

TICK = os.sysconf("SC_CLK_TCK")
SIM_CORE, FEED_CORE = 0, 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the simulator (its own process) ---------------------------------------------------------


def simulator_main(n_symbols: int, rate: float, seconds: float, pipe: Connection) -> None:
    with contextlib.suppress(OSError):
        if os.cpu_count() and os.cpu_count() >= 2:  # type: ignore[operator]
            os.sched_setaffinity(0, {SIM_CORE})
    asyncio.run(_simulate(n_symbols, rate, seconds, pipe))


async def _simulate(n_symbols: int, rate: float, seconds: float, pipe: Connection) -> None:
    from foxtrot_stream_binance.simulator import Simulator, SimulatorConfig

    config = SimulatorConfig(symbols=("BTCUSDT",), synthetic=n_symbols - 1, rate=rate, seed=5)
    async with Simulator(config) as sim:
        pipe.send(sim.settings())
        marks: list[tuple[float, float, int]] = []  # (wall, cpu, frames sent)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:  # serves until the parent ends this process
            if pipe.poll():  # the parent marks the start and the end of the window
                pipe.recv()
                r = resource.getrusage(resource.RUSAGE_SELF)
                marks.append((time.monotonic(), r.ru_utime + r.ru_stime, sim.stats.frames_sent))
                if len(marks) == 2:
                    pipe.send({"marks": marks, "frames_sent": sim.stats.frames_sent})
            await asyncio.sleep(0.05)


# --- the feed (`foxtrot-stream run --all`) ---------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def terminal(rows: int, columns: int) -> Any:
    """The writing end of a pseudo-terminal of that size; a thread reads and discards what the
    other end receives (as a terminal would show it)."""
    import fcntl
    import pty
    import struct
    import termios
    import threading

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))

    def drain() -> None:
        with contextlib.suppress(OSError):
            while os.read(master, 1 << 16):
                pass

    threading.Thread(target=drain, daemon=True).start()
    return os.fdopen(slave, "wb")


def get_status(port: int) -> Any:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=30) as answer:
        return json.loads(answer.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=2000, help="symbols listed (2,000)")
    parser.add_argument("--rate", type=float, default=10.0, help="book updates/s per symbol (10)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds streamed (60)")
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds before CPU counts")
    parser.add_argument("--sample", type=float, default=10.0, help="RSS every N seconds (10)")
    parser.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto")
    parser.add_argument("--format", choices=("jsonl", "table"), default="jsonl", dest="fmt")
    parser.add_argument(
        "--tty",
        action="store_true",
        help="stdout to a pseudo-terminal of 50 x 160 (the live table as a terminal shows it), "
        "read and discarded",
    )
    args = parser.parse_args()
    if args.warmup >= args.duration - 5:
        parser.error("--warmup must end at least 5 s before --duration")

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    sim = ctx.Process(
        target=simulator_main,
        args=(args.symbols, args.rate, args.duration + 60, child),
        daemon=True,
    )
    sim.start()
    settings = parent.recv()
    status_port = free_port()
    nominal = args.symbols * args.rate * (1 + 0.3)
    print(
        f"{datetime.date.today()}  Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.2f}; {args.symbols:,} symbols × {args.rate:g} book "
        f"updates/s (+30 % trades) ≈ {nominal:,.0f} frames/s nominal; {args.duration:g} s, "
        f"--loop {args.loop}, --format {args.fmt}{' on a 50 x 160 terminal' if args.tty else ''}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "vt_setting.json"
        config.write_text(json.dumps({"websocket.enabled": True, **settings}))
        cmd = [
            sys.executable, "-m", "foxtrot_stream", "run", "--config", str(config), "--all",
            "--format", args.fmt, "--duration", str(args.duration + 5),
            "--serve", f"127.0.0.1:{status_port}", "--loop", args.loop,
        ]  # fmt: skip
        log = Path(tmp) / "stderr.log"
        with log.open("wb") as err, open(os.devnull, "wb") as out:
            if args.tty:
                out = terminal(rows=50, columns=160)
            feed = subprocess.Popen(cmd, stdout=out, stderr=err)
            with contextlib.suppress(OSError):
                if (os.cpu_count() or 1) >= 2:
                    os.sched_setaffinity(feed.pid, {FEED_CORE})
            start = time.monotonic()
            samples: list[tuple[float, float]] = []
            cpu0 = cpu1 = 0.0
            t0 = t1 = 0.0
            next_sample = start + args.sample
            try:
                while (now := time.monotonic()) < start + args.duration:
                    if feed.poll() is not None:
                        raise SystemExit(f"the feed exited early:\n{log.read_text()[-3000:]}")
                    if not t0 and now >= start + args.warmup:
                        t0, cpu0 = now, cpu_seconds(feed.pid)
                        parent.send("mark")
                    if now >= next_sample:
                        samples.append((now - start, rss_mb(feed.pid)))
                        print(f"  {now - start:5.0f} s  RSS {samples[-1][1]:6.1f} MB", flush=True)
                        next_sample += args.sample
                    time.sleep(0.1)
                t1, cpu1 = time.monotonic(), cpu_seconds(feed.pid)
                parent.send("mark")
                end_rss = rss_mb(feed.pid)
                status = get_status(status_port)
            finally:
                feed.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    feed.wait(10)
        sim_report = parent.recv()
        sim.terminate()
        errors = [line for line in log.read_text().splitlines() if "Error" in line]

    adapters = status["adapters"] if isinstance(status, dict) and "adapters" in status else status
    binance = adapters[0] if isinstance(adapters, list) else adapters["binance"]
    ticks = [s["ticks"] for s in binance["symbols"].values()]
    got = sum(t > 0 for t in ticks)
    (w0, c0, f0), (w1, c1, f1) = sim_report["marks"]
    feed_cpu = (cpu1 - cpu0) / (t1 - t0)
    sim_cpu = (c1 - c0) / (w1 - w0)
    sent_rate = (f1 - f0) / (w1 - w0)
    print()
    print(f"feed CPU, {t1 - t0:.0f} s after {args.warmup:g} s of warm-up: {feed_cpu * 100:.1f} %")
    print(
        f"simulator: {sent_rate:,.0f} frames/s sent ({sent_rate / nominal * 100:.0f} % of "
        f"nominal), {sim_cpu * 100:.0f} % of its core; {sim_report['frames_sent']:,} sent in all"
    )
    at30 = next((mb for t, mb in samples if t >= 30), float("nan"))
    print(
        f"feed RSS: {', '.join(f'{t:.0f}s {mb:.0f}' for t, mb in samples)} MB; at 30 s "
        f"{at30:.1f} MB, at the end {end_rss:.1f} MB"
    )
    print(
        f"delivery: {got:,} of {len(ticks):,} symbols got ≥ 1 tick; ticks per symbol "
        f"min {min(ticks):,} / median {statistics.median(ticks):,.0f} / max {max(ticks):,}; "
        f"{sum(ticks):,} ticks delivered, {sim_report['frames_sent']:,} frames sent"
    )
    conns = binance["connections"]
    print(
        f"connections: {len(conns)} ({', '.join(str(c['symbols']) for c in conns)} symbols), "
        f"state {binance['state']}, reconnects {binance['reconnects']}, consumer_dropped "
        f"{binance['consumer_dropped']}, error lines {len(errors)}"
    )
    for line in errors[:5]:
        print(f"  {line[:200]}")
    print(f"load at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
