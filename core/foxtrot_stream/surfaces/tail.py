"""`foxtrot-stream tail URL`: print the ticks a source holds (the streams a sink wrote), as
`foxtrot-stream run` prints what it streams: the same JSON lines, the same live table."""

from __future__ import annotations

import asyncio
import sys

from foxtrot_stream.config.settings import Settings
from foxtrot_stream.contract.plugins import PluginHost
from foxtrot_stream.contract.records import SourceRequest, SourceSpec
from foxtrot_stream.runtime.source_feed import SourceFeed
from foxtrot_stream.surfaces.output import JsonLines, LiveTable
from foxtrot_stream.surfaces.runner import close_jsonl, redraw_until, stop_on_signals
from foxtrot_stream.util.redact import redact


async def tail(
    host: PluginHost,
    settings: Settings,
    spec: SourceSpec,
    request: SourceRequest,
    *,
    fmt: str,
    duration: float | None,
) -> int:
    """Read `request.symbols` from the source `spec` builds until a signal or `duration`."""
    adapter = host.adapters.get(request.adapter)
    display = adapter.display_name if adapter is not None else request.adapter
    own = settings.plugins.get(spec.key)
    feed = SourceFeed(spec, own, settings, request.adapter, display, request)
    try:
        await feed.start(request.symbols)
    except ValueError as exc:  # the source refused its settings or the URL
        print(f"foxtrot-stream: tail {redact(request.url or '')}: {redact(str(exc))}",
              file=sys.stderr)  # fmt: skip
        return 2
    jsonl: JsonLines | None = None
    table: LiveTable | None = None
    if fmt == "jsonl":
        jsonl = JsonLines()
        feed.add_consumer(jsonl)
    else:
        table = LiveTable([feed])
        feed.add_consumer(table)
        table.start()
    stop = asyncio.Event()
    try:
        with stop_on_signals(stop):
            await redraw_until(stop, duration, table)
    finally:
        await feed.stop()
        if jsonl is not None:
            await close_jsonl(jsonl)
        if table is not None:
            table.stop()
    return 0
