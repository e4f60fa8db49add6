"""The longest time a consumer goes without a tick, per symbol, in four situations where a feed
can stall silently. Runs the real feed against the bundled simulator on 127.0.0.1 with the
guide's default timings (or `--fast`: heartbeat 0.3 s, polling 0.2 s) and prints one line per
run.

    uv run python benchmarks/liveness_gaps.py handshake --seconds 120
    uv run python benchmarks/liveness_gaps.py flap --seconds 360
    uv run python benchmarks/liveness_gaps.py silent --seconds 360
    uv run python benchmarks/liveness_gaps.py reset --seconds 240

* `handshake`: a second symbol subscribed while the first connection's handshake is held 2 s
  (hosts subscribe one symbol per call);
* `flap`: every connection accepted streams 0.3 s, then is dropped, for the whole run;
* `silent`: connections open and pongs come back, but no data, for the whole run (REST
  answers);
* `reset`: one symbol's exchange ids restart from 1 ten seconds in.

Only uses what every version of the feed has (`Feed`, consumers, `subscribe`), so the same file
measures an older checkout: `path/to/old/.venv/bin/python benchmarks/liveness_gaps.py …`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import time

from foxtrot_stream.testing.settings import FAST_SETTINGS
from foxtrot_stream_binance.simulator import Simulator, SimulatorConfig

try:
    from foxtrot_stream.config.settings import load
    from foxtrot_stream.contract.plugins import PluginHost
    from foxtrot_stream.runtime.feed import Feed
except ImportError:  # an older checkout: the core before it was laid out by its parts
    from foxtrot_stream.feed import Feed  # type: ignore[no-redef]
    from foxtrot_stream.plugins import PluginHost  # type: ignore[no-redef]
    from foxtrot_stream.settings import load  # type: ignore[no-redef]

SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT")
GUIDE = {"websocket.enabled": True}  # every other key at the guide's default
FAST = FAST_SETTINGS


async def held(sim: Simulator) -> None:
    """Returns once the simulator holds a handshake."""
    for _ in range(1000):
        if sim.stats.held_handshakes:
            return
        await asyncio.sleep(0.01)
    raise RuntimeError("no handshake was held")


async def measure(situation: str, seconds: float, fast: bool) -> dict[str, float]:
    config = SimulatorConfig(symbols=SYMBOLS, rate=5.0, seed=5)
    async with Simulator(config) as sim:
        host = PluginHost.discover()
        values = (FAST if fast else GUIDE) | sim.settings()
        settings = load(text=json.dumps(values), schema=host.schema()).settings
        feed = Feed(host, settings, "binance")
        arrivals: dict[str, list[float]] = {s: [] for s in SYMBOLS}
        feed.add_consumer(lambda t: arrivals[t.symbol].append(time.monotonic()))
        first = SYMBOLS if situation != "handshake" else SYMBOLS[:1]
        if situation == "handshake":
            sim.slow_handshake(10.0, delay=2.0)
        await feed.start(first)
        started = time.monotonic()
        if situation == "handshake":
            await held(sim)
            await feed.subscribe(SYMBOLS[1:])
        elif situation == "flap":
            await asyncio.sleep(5.0)
            sim.flap(seconds, up=0.3)
            sim.drop_all()
        elif situation == "silent":
            await asyncio.sleep(5.0)
            sim.silence(seconds)
        elif situation == "reset":
            await asyncio.sleep(10.0)
            sim.reset_ids("BTCUSDT")
        await asyncio.sleep(seconds)
        ended = time.monotonic()
        await feed.stop()
    gaps = {}
    for symbol, times in arrivals.items():
        points = [started, *(t for t in times if started < t < ended), ended]
        gaps[symbol] = max(b - a for a, b in itertools.pairwise(points))
    return gaps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("situation", choices=("handshake", "flap", "silent", "reset"))
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--fast", action="store_true", help="the tests' scaled timings")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    gaps = asyncio.run(measure(args.situation, args.seconds, args.fast))
    shown = ", ".join(f"{s} {g:.1f}s" for s, g in gaps.items())
    timings = "fast" if args.fast else "guide defaults"
    print(f"{args.situation} ({timings}, {args.seconds:g}s): longest gap {shown}")


if __name__ == "__main__":
    main()
