"""What `foxtrot-stream run` prints: one JSON object per tick, or a live table."""

from __future__ import annotations

import sys
import time
from collections import deque
from typing import IO

import attrs
import orjson
from rich.console import Console
from rich.live import Live
from rich.table import Table

from foxtrot_stream.model import Tick


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


@attrs.define
class SymbolView:
    tick: Tick | None = None
    times: deque[float] = attrs.Factory(lambda: deque(maxlen=512))
    latency_ms: float | None = None


class LiveTable:
    """Per symbol: bid/ask, transport, breaker state, updates/s and latency, redrawn 4×/s."""

    def __init__(self, feed_state: object, console: Console | None = None) -> None:
        self.console = console or Console(stderr=False)
        self.views: dict[str, SymbolView] = {}
        self.feed_state = feed_state
        self.live: Live | None = None

    def __call__(self, tick: Tick) -> None:
        view = self.views.get(tick.symbol)
        if view is None:
            view = self.views[tick.symbol] = SymbolView()
        view.tick = tick
        view.times.append(time.monotonic())
        if tick.exchange_ts is not None:
            view.latency_ms = tick.received_ts / 1e6 - tick.exchange_ts

    def render(self) -> Table:
        table = Table(title="foxtrot-stream", expand=False)
        for col in ("symbol", "bid", "ask", "last", "transport", "breaker", "upd/s", "latency"):
            table.add_column(col, justify="right" if col not in ("symbol", "transport") else "left")
        now = time.monotonic()
        describe = getattr(self.feed_state, "describe_symbol", None)
        for symbol in sorted(self.views):
            view = self.views[symbol]
            t = view.tick
            recent = sum(1 for x in view.times if now - x <= 5.0) / 5.0
            transport, breaker = describe(symbol) if describe else ("?", "?")
            table.add_row(
                symbol,
                f"{t.bid:.8g}" if t else "",
                f"{t.ask:.8g}" if t else "",
                f"{t.last:.8g}" if t and t.last is not None else "—",
                transport,
                breaker,
                f"{recent:.1f}",
                f"{view.latency_ms:.0f} ms" if view.latency_ms is not None else "—",
            )
        return table

    def start(self) -> None:
        self.live = Live(self.render(), console=self.console, refresh_per_second=4)
        self.live.start()

    def refresh(self) -> None:
        if self.live is not None:
            self.live.update(self.render())

    def stop(self) -> None:
        if self.live is not None:
            self.live.update(self.render())
            self.live.stop()
            self.live = None
