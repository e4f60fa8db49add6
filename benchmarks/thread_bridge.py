"""What the thread bridge costs: the same feed to an asyncio consumer and to a `StreamEngine`
callback consumer on its own thread, in ticks per CPU-second of the receiving process.

One run, `full_path.py`'s sender (its own process, core 0: a pre-encoded stream of Binance
combined-stream frames, 75 % bookTicker / 25 % trade, 50 symbols, written in 256 KiB blocks as
fast as the receiver takes them) and two receivers in this process (core 1), interleaved round
by round:

a. **asyncio consumer**: a real `Feed` on `asyncio.run`, its consumer a callback on the loop
   that counts ticks;
b. **StreamEngine consumer**: a real `StreamEngine` (the feed on its loop thread) with the same
   counting callback registered by `add_consumer` (default policy unless `--policy`), called on
   the consumer's own thread behind the hand-off.

Each receiver counts from its first tick to its `--frames`-th (every frame makes one tick);
CPU is user + system time of the whole process (every thread) over that span, from
`getrusage`, so the consumer thread's work and the hand-off's wake-ups are included. A consumer
that drops ticks never reaches the last count: then the span ends when the engine says every
tick was received and nothing is queued, and the drops are printed.

Run: `uv run python benchmarks/thread_bridge.py` (about 90 s, 15 s with `--no-foxtrot`;
`--rounds`, `--frames`).

`--keeps-up RATE` measures something else: drops with a consumer that keeps up. A real
`StreamEngine` with one default consumer (it appends each tick to a list) streams 6 symbols
from the bundled simulator at RATE book updates per second each (plus trades) for
`--seconds`, then stops; the consumer's counts are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import logging
import multiprocessing as mp
import os
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import full_path as fp

from foxtrot_stream import StreamEngine
from foxtrot_stream.config.settings import Settings, load
from foxtrot_stream.contract.model import Tick
from foxtrot_stream.contract.plugins import PluginHost
from foxtrot_stream.runtime.feed import Feed
from foxtrot_stream_binance.simulator import Simulator, SimulatorConfig

BURST = 300_000
ROUNDS = 7
ROOT = Path(__file__).resolve().parents[1]
FOXTROT_HOST = Path(
    os.environ.get("FOXTROT_HOST_PATH") or ROOT / ".." / "shared" / "upstream" / "foxtrot"
).resolve()
HOST_IMPORTS = ("numpy", "talib", "loguru", "tzlocal")  # the `foxtrot-host` dependency group
ADAPTER = "FOXTROT_STREAM"


class Meter:
    """Counts ticks; marks wall time and process CPU at the first and the `n`-th."""

    def __init__(self, n: int, done: Callable[[], None]) -> None:
        self.n = n
        self.count = 0
        self.done = done
        self.t0 = self.t1 = 0.0
        self.cpu0 = self.cpu1 = 0.0
        self.dropped = 0

    @staticmethod
    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    def tick(self, _tick: Tick) -> None:
        self.count += 1
        if self.count == 1:
            self.t0, self.cpu0 = time.perf_counter(), self.cpu()
        elif self.count == self.n:
            self.mark_last()

    def mark_last(self) -> None:
        self.t1, self.cpu1 = time.perf_counter(), self.cpu()
        self.done()

    def result(self) -> dict[str, float]:
        cpu = self.cpu1 - self.cpu0
        ticks = self.n - 1 - self.dropped
        return {
            "per_cpu_s": (self.n - 1) / cpu,  # ticks the feed handed over per CPU-second
            "rate": (self.n - 1) / (self.t1 - self.t0),
            "core_busy": cpu / (self.t1 - self.t0),
            "dropped": self.dropped,
            "delivered": ticks + 1,
            "delivered_per_cpu_s": ticks / cpu,
        }


def feed_settings(host: PluginHost, port: int) -> Settings:
    values = {
        "websocket.enabled": True,
        "websocket.heartbeat.interval": 300.0,
        "binance.ws_url": f"ws://127.0.0.1:{port}",
        "binance.rest_url": f"http://127.0.0.1:{port}",
    }
    return load(text=json.dumps(values), schema=host.schema()).settings


async def asyncio_consumer(host: PluginHost, port: int, n: int, syms: list[str]) -> Meter:
    done = asyncio.Event()
    meter = Meter(n, done.set)
    feed = Feed(host, feed_settings(host, port), "binance", connect_budgets={})
    feed.add_consumer(meter.tick)
    await feed.start(syms)
    try:
        async with asyncio.timeout(120):
            await done.wait()
    finally:
        await feed.stop()
    return meter


def engine_consumer(
    host: PluginHost, port: int, n: int, syms: list[str], policy: str, maxsize: int
) -> Meter:
    done = threading.Event()
    meter = Meter(n, done.set)
    engine = StreamEngine(feed_settings(host, port), host)
    consumer = engine.add_consumer(meter.tick, name="bench", policy=policy, maxsize=maxsize)  # type: ignore[arg-type]
    engine.start()
    try:
        engine.subscribe(syms, "binance")
        deadline = time.monotonic() + 120
        while not done.wait(0.005):  # drops: the n-th tick never comes; the stats say when
            stats = consumer.stats()
            if stats["received"] >= n and stats["queued"] == 0 and meter.count:
                meter.dropped = stats["dropped"]
                meter.mark_last()
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"engine consumer: {stats}")
    finally:
        engine.stop(10)
    if meter.dropped == 0:
        meter.dropped = consumer.stats()["dropped"]
    return meter


def foxtrot_host(port: int) -> SimpleNamespace | str:
    """Foxtrot's modules, imported (as tests/hosts/ do) from a temporary trader folder whose
    vt_setting.json points at the sender; or why not."""
    if not (FOXTROT_HOST / "foxtrot" / "server" / "engine.py").is_file():
        return f"no Foxtrot host at {FOXTROT_HOST} (set FOXTROT_HOST_PATH)"
    import importlib.util

    missing = [m for m in HOST_IMPORTS if importlib.util.find_spec(m) is None]
    if missing:
        return f"Foxtrot's modules need {', '.join(missing)} (`uv sync`: group foxtrot-host)"
    trader = Path(tempfile.mkdtemp(prefix="foxtrot-trader-"))
    (trader / ".vntrader").mkdir()
    values = {
        "websocket.enabled": True,
        "websocket.heartbeat.interval": 300.0,
        "binance.ws_url": f"ws://127.0.0.1:{port}",
        "binance.rest_url": f"http://127.0.0.1:{port}",
    }
    (trader / ".vntrader" / "vt_setting.json").write_text(json.dumps(values), encoding="utf-8")
    sys.path.insert(0, str(FOXTROT_HOST))
    cwd = os.getcwd()
    os.chdir(trader)  # where Foxtrot looks for .vntrader (and writes its log folders)
    try:
        from foxtrot.core.event_engine import EventEngine
        from foxtrot.server.engine import MainEngine
        from foxtrot.util.constants import Exchange
        from foxtrot.util.event_type import EVENT_TICK
        from foxtrot.util.object import SubscribeRequest

        from foxtrot_stream.integrations.foxtrot import FoxtrotStreamAdapter
    finally:
        os.chdir(cwd)
    return SimpleNamespace(
        trader=trader,
        EventEngine=EventEngine,
        MainEngine=MainEngine,
        Exchange=Exchange,
        EVENT_TICK=EVENT_TICK,
        SubscribeRequest=SubscribeRequest,
        Adapter=FoxtrotStreamAdapter,
    )


def foxtrot_consumer(
    fx: SimpleNamespace, jobs: Any, n: int, syms: list[str], policy: str, maxsize: int
) -> Meter:
    """Foxtrot's MainEngine with the adapter; the meter counts `EVENT_TICK` events. The burst
    is asked for once every symbol is subscribed (Foxtrot subscribes one symbol per call: the
    first opens the connection, the others are subscribed on it)."""
    done = threading.Event()
    meter = Meter(n, done.set)
    cwd = os.getcwd()
    os.chdir(fx.trader)  # Foxtrot's EventEngine writes log folders where it starts
    main_engine = fx.MainEngine(fx.EventEngine())
    try:
        main_engine.event_engine.register(fx.EVENT_TICK, lambda event: meter.tick(event.data))
        adapter = main_engine.add_adapter(fx.Adapter)
        main_engine.connect({"policy": policy, "maxsize": maxsize}, ADAPTER)
        for sym in syms:
            main_engine.subscribe(fx.SubscribeRequest(sym, fx.Exchange.BINANCE), ADAPTER)
        deadline = time.monotonic() + 30
        while len(adapter.status()["adapters"]["binance"]["symbols"]) < len(syms):
            if time.monotonic() > deadline:
                raise TimeoutError("foxtrot: the symbols were not all subscribed")
            time.sleep(0.01)
        jobs.put(("burst", n))
        deadline = time.monotonic() + 120
        while not done.wait(0.25):  # drops: the n-th tick never comes; the stats say when
            stats = adapter.status()["consumers"][0]
            drained = stats["queued"] == 0 and main_engine.event_engine._queue.empty()
            if stats["received"] >= n and drained and meter.count:  # (and Foxtrot's queue)
                meter.dropped = stats["dropped"]
                meter.mark_last()
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"foxtrot consumer: {stats}, counted {meter.count}")
        if meter.dropped == 0:
            meter.dropped = adapter.status()["consumers"][0]["dropped"]
    finally:
        main_engine.close()  # stops Foxtrot's event engine, then closes the adapter
        os.chdir(cwd)
    return meter


def keeps_up(rate: float, seconds: float) -> None:
    symbols = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="simulator", daemon=True)
    thread.start()

    def on_sim_loop(coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(10)

    sim = on_sim_loop(Simulator(SimulatorConfig(symbols=symbols, rate=rate, seed=11)).start())
    host = PluginHost.discover()
    values = {"websocket.enabled": True, **sim.settings()}
    engine = StreamEngine(load(text=json.dumps(values), schema=host.schema()).settings, host)
    got: list[Tick] = []
    consumer = engine.add_consumer(got.append, name="keeps-up")
    engine.start()
    try:
        engine.subscribe(list(symbols))
        time.sleep(seconds)
    finally:
        engine.stop(10)
        on_sim_loop(sim.stop())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
    stats = consumer.stats()
    print(
        f"{len(symbols)} symbols at {rate:g} updates/s each for {seconds:g} s, default policy: "
        f"received {stats['received']}, delivered {stats['delivered']} (the callback got "
        f"{len(got)}), dropped {stats['dropped']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=BURST)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--policy", default="conflate", choices=("conflate", "drop_oldest"))
    parser.add_argument("--maxsize", type=int, default=10_000)
    parser.add_argument("--keeps-up", type=float, metavar="RATE")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--no-foxtrot", action="store_true", help="(a) and (b) only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    for handler in logging.getLogger().handlers:  # (the adapter raises our loggers to INFO)
        handler.setLevel(logging.ERROR)
    if args.keeps_up is not None:
        keeps_up(args.keeps_up, args.seconds)
        return
    syms = fp.symbols()
    frames, _keys = fp.payloads(args.frames, syms)
    wire = [fp.ws_frame(f) for f in frames]
    offsets = [0]
    for w in wire:
        offsets.append(offsets[-1] + len(w))
    blob = b"".join(wire)
    del frames, wire
    ctx = mp.get_context("fork")
    jobs, results = ctx.Queue(), ctx.Queue()
    ready, ready_child = ctx.Pipe(duplex=False)
    sender = ctx.Process(
        target=fp.sender_main,
        args=(blob, offsets, syms, jobs, results, ready_child),
        daemon=True,
    )
    sender.start()
    try:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {fp.RECEIVER_CORE})
        port = ready.recv()
        host = PluginHost.discover()
        n = args.frames
        print(
            f"{datetime.date.today()}  Python {sys.version.split()[0]}, aiohttp "
            f"{aiohttp.__version__}, {os.cpu_count()} CPUs, {n:,} frames per round, "
            f"engine policy {args.policy} (maxsize {args.maxsize})"
        )
        names = ["a. asyncio consumer (Feed)", "b. StreamEngine callback consumer"]
        fx = None if args.no_foxtrot else foxtrot_host(port)
        if isinstance(fx, str):
            print(f"  (c) skipped: {fx}")
        elif fx is not None:
            names.append("c. Foxtrot EVENT_TICK handler")
        got: dict[str, list[dict[str, float]]] = {k: [] for k in names}
        try:
            for r in range(args.rounds):
                k = r % len(names)  # each receiver runs first, second, ... in turn
                for name in names[k:] + names[:k]:
                    if name.startswith("a."):
                        jobs.put(("burst", n))
                        meter = asyncio.run(asyncio_consumer(host, port, n, syms))
                    elif name.startswith("b."):
                        jobs.put(("burst", n))
                        meter = engine_consumer(host, port, n, syms, args.policy, args.maxsize)
                    else:
                        assert isinstance(fx, SimpleNamespace)
                        meter = foxtrot_consumer(fx, jobs, n, syms, args.policy, args.maxsize)
                    results.get(True, 30)
                    res = meter.result()
                    got[name].append(res)
                    print(
                        f"  round {r + 1} {name:<36} {res['per_cpu_s'] / 1000:6.0f}k "
                        f"ticks/CPU-s {res['rate'] / 1000:6.0f}k ticks/s  "
                        f"dropped {res['dropped']:.0f}"
                        + (
                            f" (delivered {res['delivered_per_cpu_s'] / 1000:.0f}k/CPU-s)"
                            if res["dropped"]
                            else ""
                        ),
                        flush=True,
                    )
                a = got[names[0]][-1]["per_cpu_s"]
                shown = ", ".join(
                    f"{name[0]}/a = {got[name][-1]['per_cpu_s'] / a:.2f}" for name in names[1:]
                )
                print(f"  round {r + 1} {shown}")
        finally:
            if isinstance(fx, SimpleNamespace):
                shutil.rmtree(fx.trader, ignore_errors=True)
        print()
        print(f"median of {args.rounds} rounds (min – max):")
        for name, rows in got.items():
            per = [x["per_cpu_s"] / 1000 for x in rows]
            rate = [x["rate"] / 1000 for x in rows]
            busy = statistics.median(x["core_busy"] for x in rows)
            drops = sum(x["dropped"] for x in rows)
            print(
                f"  {name:<36} {statistics.median(per):6.0f}k ticks/CPU-s "
                f"({min(per):.0f}k – {max(per):.0f}k)  {statistics.median(rate):6.0f}k ticks/s  "
                f"CPU {busy * 100:.0f} % of a core, dropped {drops:.0f} in all"
            )
        med_a = statistics.median(x["per_cpu_s"] for x in got[names[0]])
        for name in names[1:]:
            ratios = [
                x["per_cpu_s"] / a["per_cpu_s"]
                for a, x in zip(got[names[0]], got[name], strict=True)
            ]
            med = statistics.median(x["per_cpu_s"] for x in got[name])
            print(
                f"  {name[0]} / a per round: median {statistics.median(ratios):.2f} "
                f"(min {min(ratios):.2f}, max {max(ratios):.2f}); ratio of medians "
                f"{med / med_a:.2f}"
            )
    finally:
        sender.terminate()
        sender.join(5)


if __name__ == "__main__":
    main()
