"""`foxtrot-stream run`: stream symbols to stdout until a signal or `--duration`."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Sequence

from foxtrot_stream.feed import Feed
from foxtrot_stream.output import JsonLines, LiveTable
from foxtrot_stream.plugins import PluginHost
from foxtrot_stream.settings import Settings


async def run(
    host: PluginHost,
    settings: Settings,
    adapter: str,
    symbols: Sequence[str],
    *,
    duration: float | None,
    fmt: str,
) -> int:
    feed = Feed(host, settings, adapter)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    jsonl: JsonLines | None = None
    table: LiveTable | None = None
    if fmt == "jsonl":
        jsonl = JsonLines()
        feed.add_consumer(jsonl)
    else:
        table = LiveTable(feed)
        feed.add_consumer(table)
        table.start()
    try:
        await feed.start(symbols)
        if not feed.symbols:
            return 2  # every symbol refused; each was reported
        async with asyncio.timeout(duration):
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.25):
                        await stop.wait()
                if jsonl is not None:
                    jsonl.flush()
                if table is not None:
                    table.refresh()
    except TimeoutError:
        pass  # --duration reached
    finally:
        await feed.stop()
        if jsonl is not None:
            jsonl.flush()
        if table is not None:
            table.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    return 0
