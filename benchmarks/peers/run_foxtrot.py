"""foxtrot-stream: a real `Feed` (the Binance plugin, its sequencer and metrics) with a consumer
that counts the WebSocket's ticks, as `benchmarks/full_path.py` builds it (at start the feed
also polls REST quotes until the WebSocket has proven it delivers; those are not counted).
Runs in the project env."""

from __future__ import annotations

import asyncio
import logging
import sys
from importlib.metadata import version
from pathlib import Path

from _common import Meter, parse_args, symbols

from foxtrot_stream.contract.model import Tick, TransportKind

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from full_path import loopback_feed


async def main() -> None:
    args = parse_args()
    meter = Meter(
        args.frames, args.timeout, f"{version('foxtrot-stream')} (this tree)", "Feed.add_consumer"
    )
    feed = loopback_feed(args.port)
    count, websocket = meter.tick, TransportKind.WEBSOCKET

    def on_tick(tick: Tick) -> None:
        if tick.transport is websocket:  # not the REST quotes it polls at start
            count()

    feed.add_consumer(on_tick)
    await feed.start(symbols(args.symbols))
    await asyncio.Event().wait()  # the meter exits the process at the last tick


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main())
