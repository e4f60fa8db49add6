"""Where the Foxtrot `EVENT_TICK` path's time goes: `thread_bridge.py`'s receiver (c) with parts of
Foxtrot's own path short-circuited, interleaved with receiver (a), lossless policy.

Foxtrot's `BaseAdapter.on_tick` puts two events per tick (`eTick.` and `eTick.<vt_symbol>`) on
its `EventEngine`'s queue, whose thread takes them one by one and calls the handlers. Here it is
replaced, in this process only (the host's files are untouched), by:

* `full`: Foxtrot's own `on_tick`, as in `thread_bridge.py`;
* `queue, eTick. only`: one event per tick through the queue (the per-symbol one left out);
* `sync, both events`: both events dispatched on the adapter's consumer thread, no queue;
* `sync, eTick. only`: one event dispatched on the consumer thread: what is left is the
  receive path, the hand-off, our `TickData` conversion, one `Event` and Foxtrot's handlers
  (its OMS keeps the last tick, ours counts).

The differences between the rows, in µs per tick, say what each part costs.

Run: `uv run python benchmarks/foxtrot_parts.py` (about 2 min; `--rounds`, `--frames`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import multiprocessing as mp
import os
import shutil
import statistics
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import full_path as fp
import thread_bridge as tb

from foxtrot_stream.contract.plugins import PluginHost


def variants(fx: SimpleNamespace) -> dict[str, Callable[[Any, Any], None]]:
    from foxtrot.adapter.base_adapter import BaseAdapter
    from foxtrot.core.event_engine import Event

    tick_event = fx.EVENT_TICK

    def queue_one(self: Any, tick: Any) -> None:
        self.event_engine.put(Event(tick_event, tick))

    def sync_both(self: Any, tick: Any) -> None:
        process = self.event_engine._process
        process(Event(tick_event, tick))
        process(Event(tick_event + tick.vt_symbol, tick))

    def sync_one(self: Any, tick: Any) -> None:
        self.event_engine._process(Event(tick_event, tick))

    return {
        "full": BaseAdapter.on_tick,
        "queue, eTick. only": queue_one,
        "sync, both events": sync_both,
        "sync, eTick. only": sync_one,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=tb.BURST)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.ERROR)
    n = args.frames
    syms = fp.symbols()
    frames, _keys = fp.payloads(n, syms)
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
    fx: SimpleNamespace | str | None = None
    try:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {fp.RECEIVER_CORE})
        port = ready.recv()
        host = PluginHost.discover()
        fx = tb.foxtrot_host(port)
        if isinstance(fx, str):
            raise SystemExit(fx)
        from foxtrot.adapter.base_adapter import BaseAdapter

        on_tick = variants(fx)
        original = BaseAdapter.on_tick
        got: dict[str, list[float]] = {k: [] for k in ["a. asyncio consumer", *on_tick]}
        for r in range(args.rounds):
            jobs.put(("burst", n))
            meter = asyncio.run(tb.asyncio_consumer(host, port, n, syms))
            results.get(True, 30)
            got["a. asyncio consumer"].append(meter.result()["per_cpu_s"])
            try:
                for name, fn in on_tick.items():
                    BaseAdapter.on_tick = fn
                    meter = tb.foxtrot_consumer(fx, jobs, n, syms, "drop_oldest", 1_000_000)
                    results.get(True, 30)
                    got[name].append(meter.result()["per_cpu_s"])
            finally:
                BaseAdapter.on_tick = original
            shown = ", ".join(f"{k}: {v[-1] / 1000:.0f}k" for k, v in got.items())
            print(f"  round {r + 1} (ticks/CPU-s) {shown}", flush=True)
        print(f"\nmedian of {args.rounds} rounds (min – max), {n:,} frames each:")
        for name, values in got.items():
            med = statistics.median(values)
            print(
                f"  {name:<22} {med / 1000:5.0f}k ticks/CPU-s ({min(values) / 1000:.0f}k – "
                f"{max(values) / 1000:.0f}k)  {1e6 / med:5.2f} µs per tick"
            )
    finally:
        sender.terminate()
        sender.join(5)
        if isinstance(fx, SimpleNamespace):
            shutil.rmtree(fx.trader, ignore_errors=True)


if __name__ == "__main__":
    main()
