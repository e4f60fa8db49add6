"""`foxtrot-stream run`: stream symbols to stdout until a signal or `--duration`."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import sys
from collections.abc import Iterator, Mapping, Sequence

from foxtrot_stream.config.settings import Settings
from foxtrot_stream.contract.plugins import PluginHost
from foxtrot_stream.contract.records import PollError
from foxtrot_stream.runtime.feed import Feed
from foxtrot_stream.surfaces.output import JsonLines, LiveTable
from foxtrot_stream.surfaces.serve import ServeAddressError, ServeOptions, serve_feeds


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set `stop` (a clean exit 0) while inside; handlers removed after."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        # not the main thread, or a platform without loop signal handlers: Ctrl-C then
        # raises KeyboardInterrupt; asyncio.run cancels the run (whose `finally` stops the
        # feed and flushes) and the CLI exits 0
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def run(
    host: PluginHost,
    settings: Settings,
    plan: Mapping[str, Sequence[str]],
    *,
    duration: float | None,
    fmt: str,
    serve: tuple[str, int] | None = None,
    all_symbols: bool = False,
    serve_options: ServeOptions | None = None,
) -> int:
    """Stream `plan` (adapter → its symbols): one feed per adapter, each with its own
    connections, breakers and polling, so one exchange's outage never moves the other's
    symbols; one output, one status page and one `/metrics` for all of them."""
    feeds = [Feed(host, settings, adapter) for adapter in plan]
    try:
        server = await serve_feeds(lambda: feeds, serve, serve_options)
    except ServeAddressError as exc:
        print(f"foxtrot-stream: {exc}", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    jsonl: JsonLines | None = None
    table: LiveTable | None = None
    if fmt == "jsonl":
        jsonl = JsonLines()
        for feed in feeds:
            feed.add_consumer(jsonl)
    else:
        table = LiveTable(feeds)
        for feed in feeds:
            feed.add_consumer(table)
        table.start()
    try:
        with stop_on_signals(stop):
            return await _stream(feeds, plan, stop, duration, jsonl, table, all_symbols)
    finally:
        if server is not None:
            await server.stop()
        # `run` is the last thing the CLI does before exiting. Without this the interpreter's
        # shutdown collections walk every object that aiohttp, the plugins and the feed
        # created: 0.2-0.5 s measured on a 2-core machine, half the second allowed between the
        # signal (or --duration) and the exit. Frozen objects are skipped by the collector.
        gc.freeze()


async def _start(feed: Feed, symbols: Sequence[str], all_symbols: bool) -> str | None:
    """Start one feed; what went wrong, None if it streams something."""
    if all_symbols:
        await feed.start()
        try:
            listed = await feed.trading_symbols()
        except (TypeError, PollError) as exc:
            return f"--all: {exc}"
        feed.log.info("--all: %d symbols the exchange lists as trading", len(listed))
        symbols = listed
        await feed.subscribe(symbols)
    else:
        await feed.start(symbols)
    if not feed.symbols:
        if feed.elsewhere and not feed.refused:
            return (
                f"nothing to stream: shard {feed.shard} holds none of {', '.join(symbols)} "
                f"(websocket.{feed.name}.shard or --shard)"
            )
        refused = ", ".join(sorted(feed.refused)) or ", ".join(symbols)
        return f"nothing to stream: {refused} refused"
    return None


async def _stream(
    feeds: Sequence[Feed],
    plan: Mapping[str, Sequence[str]],
    stop: asyncio.Event,
    duration: float | None,
    jsonl: JsonLines | None,
    table: LiveTable | None,
    all_symbols: bool = False,
) -> int:
    try:
        for feed in feeds:
            problem = await _start(feed, plan[feed.name], all_symbols)
            if problem is not None:
                which = f" ({feed.name})" if len(feeds) > 1 else ""
                print(f"foxtrot-stream: {problem}{which}", file=sys.stderr)
                return 2
        await redraw_until(stop, duration, table)
    finally:
        for feed in feeds:
            await feed.stop()
        if jsonl is not None:
            await close_jsonl(jsonl)
        if table is not None:
            table.stop()
    return 0


async def redraw_until(
    stop: asyncio.Event, duration: float | None, table: LiveTable | None
) -> None:
    """Wait for `stop` (a signal) or `duration` seconds, redrawing `table` every quarter
    second."""
    with contextlib.suppress(TimeoutError):  # --duration reached
        async with asyncio.timeout(duration):
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):  # a quarter second: redraw
                    async with asyncio.timeout(0.25):
                        await stop.wait()
                if table is not None:
                    await table.refresh()


async def close_jsonl(jsonl: JsonLines) -> None:
    """What is buffered gets `JsonLines.FLUSH_TIMEOUT` (0.5 s) to reach the reader; the rest is
    counted as dropped and said on stderr. A reader that went away (`| head`) is not an error."""
    await jsonl.aclose()
    if jsonl.dropped:
        print(
            f"foxtrot-stream: {jsonl.dropped} ticks dropped: the reader of stdout was too slow",
            file=sys.stderr,
        )
