"""What `foxtrot-stream run` prints: one JSON object per tick, or a live table."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING

import orjson
from rich.console import Console
from rich.live import Live
from rich.table import Table

from foxtrot_stream.model import Tick
from foxtrot_stream.status import AdapterStatus, adapter_status_async

if TYPE_CHECKING:
    from foxtrot_stream.feed import Feed


class JsonLines:
    """Writes each tick as one JSON line. Lines are whole: a line is written in one call."""

    def __init__(self, out: IO[bytes] | None = None) -> None:
        self.out = out if out is not None else sys.stdout.buffer
        self.lines = 0
        self.broken = False

    def __call__(self, tick: Tick) -> None:
        if self.broken:
            return
        try:
            self.out.write(orjson.dumps(tick.to_json_dict(), option=orjson.OPT_APPEND_NEWLINE))
        except BrokenPipeError:
            self.broken = True  # the reader went away (`| head`): stop writing, keep streaming
            return
        self.lines += 1

    def flush(self) -> None:
        if not self.broken:
            try:
                self.out.flush()
            except BrokenPipeError:
                self.broken = True


class LiveTable:
    """The figures of `/status` in the terminal: per symbol bid/ask/last, transport, breaker,
    updates/s, latency p50/p99 (clock-corrected where an offset estimate exists), connection
    uptime and errors per minute; per adapter a summary line.

    Prices are redrawn at every `refresh()` (4x/s); the status figures are rebuilt at most once
    a second (`STATUS_EVERY`), in chunks that let the loop run, since with many symbols a
    status build takes tens of milliseconds."""

    STATUS_EVERY = 1.0

    def __init__(self, feeds: Sequence[Feed], console: Console | None = None) -> None:
        # off a terminal (a pipe, a log file) there is no width to fit: don't squash columns
        self.console = console or Console(width=None if sys.stdout.isatty() else 132)
        self.feeds = feeds
        self.last: dict[str, Tick] = {}
        self.live: Live | None = None
        self._records: list[AdapterStatus] = []
        self._built = -math.inf

    def __call__(self, tick: Tick) -> None:
        self.last[tick.symbol] = tick

    def render(self) -> Table:
        table = Table(title="foxtrot-stream", expand=False, padding=(0, 1), collapse_padding=True)
        columns = ("symbol", "bid", "ask", "last", "transport", "breaker", "upd/s", "p50 ms",
                   "p99 ms", "uptime", "err/min")  # fmt: skip
        for col in columns:
            left = col in ("symbol", "transport", "breaker")
            table.add_column(
                col,
                justify="left" if left else "right",
                no_wrap=True,
                min_width={"symbol": 8, "transport": 9, "breaker": 9}.get(col),
            )
        captions = []
        if not self._records:  # before start(), or rendered on its own: build them now
            self._records = [feed.status_record() for feed in self.feeds]
        for st in self._records:
            uptimes = {c.id: c.uptime for c in st.connections}
            errors = sum(st.errors_per_minute.values())
            for s in st.symbols.values():
                t = self.last.get(s.symbol)
                lat = s.latency_corrected_ms or s.latency_ms
                uptime = uptimes.get(s.connection) if s.connection is not None else None
                table.add_row(
                    s.symbol,
                    f"{t.bid:.8g}" if t else "",
                    f"{t.ask:.8g}" if t else "",
                    f"{t.last:.8g}" if t and t.last is not None else "—",
                    s.transport,
                    s.breaker,
                    f"{s.updates_per_second:.1f}",
                    f"{lat.p50:.1f}" if lat.p50 is not None else "—",
                    f"{lat.p99:.1f}" if lat.p99 is not None else "—",
                    _duration(uptime),
                    str(errors),
                )
            offset = (
                f"clock offset {st.clock.offset_ms:+.1f} ± {st.clock.uncertainty_ms:.1f} ms"
                if st.clock.offset_ms is not None and st.clock.uncertainty_ms is not None
                else "clock offset —"
            )
            captions.append(
                f"{st.display_name}: {st.state}, {st.updates_per_second:.1f} upd/s, "
                f"{st.reconnects} reconnects, {st.http.polls} HTTP polls, "
                f"{st.malformed_frames} malformed, {offset}"
            )
        table.caption = "\n".join(captions)
        table.caption_justify = "left"
        return table

    def start(self) -> None:
        self.live = Live(self.render(), console=self.console, refresh_per_second=4)
        self.live.start()

    async def refresh(self) -> None:
        if self.live is None:
            return
        now = time.monotonic()
        if now - self._built >= self.STATUS_EVERY:
            self._built = now
            self._records = [await adapter_status_async(feed.record()) for feed in self.feeds]
        self.live.update(self.render())

    def stop(self) -> None:
        if self.live is not None:
            self._records = [feed.status_record() for feed in self.feeds]  # the final figures
            self.live.update(self.render())
            self.live.stop()
            self.live = None
            if not self.console.is_terminal:
                self.console.line()  # the last render ends without one off a terminal


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "down"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"
