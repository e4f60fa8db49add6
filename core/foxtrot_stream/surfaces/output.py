"""What `foxtrot-stream run` prints: one JSON object per tick, or a live table."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import select
import stat
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TextIO

import msgspec
from rich.cells import cell_len
from rich.console import Console, Group
from rich.file_proxy import FileProxy
from rich.live import Live
from rich.text import Text

from foxtrot_stream.contract.model import Tick
from foxtrot_stream.runtime.source_feed import SourceFeed
from foxtrot_stream.runtime.status import AdapterStatus, adapter_status_async

if TYPE_CHECKING:
    from foxtrot_stream.runtime.feed import Feed

log = logging.getLogger(__name__)


_encode = msgspec.json.Encoder().encode


class JsonLines:
    """Writes each tick as one JSON line to stdout without ever blocking the feed's loop.

    A tick is encoded on the loop (`__call__`) and queued, whole lines only, in a buffer bounded
    to `max_bytes`; a writer thread drains it to the file descriptor. When the buffer is full
    (the reader of stdout is slower than the feed) the tick is dropped and counted in `dropped`;
    `lines` counts the lines written. A reader that goes away (`| head`: EPIPE) sets `broken`:
    nothing more is written or counted, the feed streams on. `aclose()` flushes for at most
    `flush_timeout` seconds, then counts what is left as dropped.

    Why a thread doing `os.write` on the raw descriptor, and not non-blocking writes with
    `loop.add_writer`: O_NONBLOCK is a flag of the open file description, which stdout often
    shares with stderr (`2>&1`, a terminal) and with the shell and the other processes of a
    pipeline; setting it would make their writes, and our logging to stderr, fail with EAGAIN.
    `add_writer` also refuses regular files (`> ticks.jsonl`). `sys.stdout.buffer` is not used
    because the thread could hold its lock when the interpreter shuts down.

    Whole lines: the thread waits (`poll`, with a timeout so that it sees `aclose`) until the
    descriptor is writable, then writes whole lines, at most `PIPE_BUF` (4 KiB) at a time to a
    pipe, socket or terminal (64 KiB to a file). A write of at most `PIPE_BUF` to a pipe is
    atomic, all or nothing, even if it blocks (another writer, e.g. stderr on the same pipe, took
    the room after the poll) and the process exits meanwhile. A chunk partly written (a socket or
    a terminal may take part of it) is finished before the thread stops, past the deadline too;
    `aclose` waits `JOIN_GRACE` for that. A single line longer than `PIPE_BUF` (never a tick:
    about 240 bytes) is written on its own and has no such guarantee.
    """

    MAX_BYTES = 1 << 20
    """Default bound of the buffer: about 4,000 ticks, seconds of a busy feed."""
    FLUSH_TIMEOUT = 0.5
    """Default for `aclose`: how long what is buffered may take to reach the reader."""
    JOIN_GRACE = 0.1
    """How long `aclose` waits, after `flush_timeout`, for a thread stuck in a write."""
    POLL_EVERY = 0.05
    """Longest wait for a writable descriptor before the thread looks at `aclose` again."""

    def __init__(
        self,
        fd: int | None = None,
        *,
        max_bytes: int = MAX_BYTES,
        flush_timeout: float = FLUSH_TIMEOUT,
    ) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be > 0, got {max_bytes!r}")
        self.fd = fd if fd is not None else sys.stdout.fileno()
        self.max_bytes = max_bytes
        self.flush_timeout = flush_timeout
        self.lines = 0
        """Lines written (whole, from the reader's point of view)."""
        self.dropped = 0
        """Ticks not written because the reader was too slow: the buffer was full, or they were
        still buffered when `aclose` gave up."""
        self.broken = False
        """The reader went away (EPIPE): nothing more is written or counted."""
        self.error: OSError | None = None
        """Another write error (e.g. a full disk): logged, writing stopped, the feed streams on."""
        mode = os.fstat(self.fd).st_mode
        pipe_like = stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(self.fd)
        self._chunk = select.PIPE_BUF if pipe_like else 1 << 16
        self._poller: select.poll | None = None
        if hasattr(select, "poll"):  # not on Windows: there the writes simply block the thread
            self._poller = select.poll()
            self._poller.register(self.fd, select.POLLOUT)
        # the buffer: lines, their total size, and what the thread took but has not yet written
        self._cond = threading.Condition(threading.Lock())
        self._buf: deque[bytes] = deque()
        self._size = 0
        self._inflight = 0
        self._waiting = False  # the thread waits for lines: notify it
        self._wake_pending = False  # a notify is scheduled for the end of this loop turn
        self._deadline: float | None = None  # set by aclose: stop writing at this time
        self._done = False  # the thread's leftovers are counted; nothing more is queued
        self._on_exit: Callable[[], object] | None = None  # aclose waits for the thread
        self._exited = False
        self._thread = threading.Thread(target=self._run, name="foxtrot-stream-jsonl", daemon=True)
        self._thread.start()

    def __call__(self, tick: Tick) -> None:
        """On the loop: encode and queue the tick, or count it dropped. Never blocks on I/O."""
        if self.broken or self.error is not None:
            return
        line = _encode(tick) + b"\n"  # the fields of `Tick.to_json_dict`, in one C call
        with self._cond:
            if self._done or self._size + len(line) > self.max_bytes:
                self.dropped += 1
                return
            self._buf.append(line)
            self._size += len(line)
            if self._waiting and not self._wake_pending:
                # wake the thread once per turn of the loop, when this turn's ticks are all
                # queued: one write for them, not a wake-up and a write per tick
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:  # called outside a loop: wake it now
                    self._cond.notify()
                else:
                    self._wake_pending = True
                    loop.call_soon(self._wake)

    def _wake(self) -> None:
        with self._cond:
            self._wake_pending = False
            self._cond.notify()

    @property
    def buffered(self) -> int:
        """Lines waiting for the reader (queued or being written)."""
        with self._cond:
            return len(self._buf) + self._inflight

    async def aclose(self) -> None:
        """Flush for at most `flush_timeout` seconds, then stop the thread; what could not be
        written is counted in `dropped`. The loop runs meanwhile."""
        loop = asyncio.get_running_loop()
        exited = asyncio.Event()
        with self._cond:
            if self._deadline is None:
                self._deadline = time.monotonic() + self.flush_timeout
            self._on_exit = lambda: loop.call_soon_threadsafe(exited.set)
            if self._exited:
                exited.set()
            self._cond.notify()
        # the thread ends by the deadline unless it is blocked in a write (see the class
        # docstring): then what it holds is counted as dropped; it is a daemon, it cannot delay
        # the exit
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.flush_timeout + self.JOIN_GRACE):
                await exited.wait()
        self._finish()

    def _finish(self) -> None:
        with self._cond:
            if self._done:
                return
            self._done = True
            if not self.broken and self.error is None:
                self.dropped += len(self._buf) + self._inflight
            self._buf.clear()
            self._size = self._inflight = 0

    # --- the writer thread -----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while (taken := self._take()) is not None:
                chunk, n = taken
                if not self._write(chunk):
                    break
                with self._cond:
                    self.lines += n
                    if self._done:  # aclose gave up waiting for this write: it counted them
                        self.dropped -= n
                    self._inflight = 0
        finally:
            self._finish()
            with self._cond:
                self._exited = True
                on_exit = self._on_exit
            if on_exit is not None:
                with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                    on_exit()

    def _take(self) -> tuple[bytes, int] | None:
        """Whole lines, at most one chunk (or one long line), and how many; None: stop."""
        with self._cond:
            while not self._buf:
                if self._deadline is not None:
                    return None  # closing, and everything is written
                self._waiting = True
                self._cond.wait()
                self._waiting = False
            if self._deadline is not None and time.monotonic() >= self._deadline:
                return None  # closing: time is up, what is left is counted dropped
            lines = [self._buf.popleft()]
            size = len(lines[0])
            while self._buf and size + len(self._buf[0]) <= self._chunk:
                size += len(self._buf[0])
                lines.append(self._buf.popleft())
            self._size -= size
            self._inflight = len(lines)
        return b"".join(lines), len(lines)

    def _write(self, chunk: bytes) -> bool:
        """Write the chunk whole; False: stop (reader gone, write error, or out of time before
        the chunk was begun)."""
        view = memoryview(chunk)
        begun = False
        while view:
            if not self._wait_writable(begun):
                return False
            try:
                n = os.write(self.fd, view)
            except BlockingIOError:
                continue  # O_NONBLOCK set by another process sharing the description: wait
            except BrokenPipeError:
                self.broken = True  # the reader went away (`| head`): stop writing, keep streaming
                return False
            except OSError as exc:
                self.error = exc
                log.error("stopped writing to stdout: %s", exc)
                return False
            view = view[n:]
            begun = begun or n > 0
        return True

    def _wait_writable(self, begun: bool) -> bool:
        if self._poller is None:
            return True
        while True:
            timeout = self.POLL_EVERY
            deadline = self._deadline
            if deadline is not None and not begun:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                timeout = min(timeout, left)
            # POLLERR/POLLHUP (reader gone) or POLLNVAL: the write says which error it is
            if self._poller.poll(math.ceil(timeout * 1000)):
                return True


#: The table's columns, in display order.
COLUMNS = ("symbol", "bid", "ask", "last", "transport", "breaker", "upd/s", "p50 ms", "p99 ms",
           "uptime", "err/min")  # fmt: skip
#: Which columns a narrow terminal keeps, most important first: the longest head of this list
#: that fits (symbol, bid and ask always), so a narrower terminal only ever loses columns from
#: the end.
COLUMN_PRIORITY = ("symbol", "bid", "ask", "last", "transport", "breaker", "upd/s", "p99 ms",
                   "p50 ms", "uptime", "err/min")  # fmt: skip
_ALWAYS = 3
_LEFT = ("symbol", "transport", "breaker")
_MIN_WIDTH = {"symbol": 8, "transport": 9, "breaker": 9}
#: Each column adds its content, a space either side and one border; the table its left border.
_CHROME_PER_COLUMN, _CHROME = 3, 1
#: Lines of the table that are not rows or captions: title, borders, header, and one spare for
#: the cursor line rich's live display keeps below.
_TABLE_CHROME_LINES = 6


def draw_table(
    columns: Sequence[str],
    widths: dict[str, int],
    rows: Sequence[tuple[str, ...]],
    captions: Sequence[str],
    room: int,
) -> Group:
    """`rows` (cells in `COLUMNS` order) under `columns`, drawn in rich's `Table` style (heavy
    head box, a space either side of each cell, bold header, italic title, dim italic caption:
    the layout `fit_columns` counts), from the widths the caller measured already. rich's own
    `Table` measured, padded and wrapped every cell again: 25 ms a frame for 45 rows, a tenth
    of a core at 4 frames a second; this takes about 2 ms. A line wider than the terminal is
    cropped, never wrapped (the caption wraps); the title is centred over what of the table
    fits in `room` cells."""
    index = [COLUMNS.index(col) for col in columns]
    sizes = [widths[col] for col in columns]
    left = [col in _LEFT for col in columns]

    def line(cells: Sequence[str], bar: str) -> str:
        out = []
        for cell, size, flush_left in zip(cells, sizes, left, strict=True):
            pad = " " * (size - cell_len(cell))
            out.append(f" {cell}{pad} " if flush_left else f" {pad}{cell} ")
        return bar + bar.join(out) + bar

    def rule(start: str, fill: str, cross: str, end: str) -> str:
        return start + cross.join(fill * (size + 2) for size in sizes) + end

    top = rule("┏", "━", "┳", "┓")
    body = "\n".join(line([row[i] for i in index], "│") for row in rows)
    table = Text(no_wrap=True, overflow="crop")
    title = "foxtrot-stream".center(min(cell_len(top), room)).rstrip()
    table.append(title + "\n", style="table.title")
    table.append(top + "\n")
    table.append(line(columns, "┃"), style="table.header")
    table.append("\n" + rule("┡", "━", "╇", "┩") + "\n")
    if body:
        table.append(body + "\n")
    table.append(rule("└", "─", "┴", "┘"))
    if not captions:
        return Group(table)
    return Group(table, Text("\n".join(captions), style="table.caption"))


def fit_columns(widths: dict[str, int], room: int) -> list[str]:
    """The columns to show in `room` terminal cells, in display order, given each column's
    content width (header included): the head of `COLUMN_PRIORITY` that fits."""
    used, keep = _CHROME, set()
    for i, col in enumerate(COLUMN_PRIORITY):
        used += widths[col] + _CHROME_PER_COLUMN
        if i >= _ALWAYS and used > room:
            break
        keep.add(col)
    return [col for col in COLUMNS if col in keep]


class LiveTable:
    """The figures of `/status` in the terminal: per symbol bid/ask/last, transport, breaker,
    updates/s, latency p50/p99 (clock-corrected where an offset estimate exists), connection
    uptime and errors per minute; per adapter a summary line. A terminal too narrow for all of
    them drops the least important columns (`COLUMN_PRIORITY`), never the prices bid and ask.

    Prices are redrawn at every `refresh()` (4x/s); the status figures are rebuilt at most once
    a second (`STATUS_EVERY`; with more than 500 symbols, once a second per 500), in chunks that
    let the loop run, since with many symbols a
    status build takes tens of milliseconds.

    While the table is live on a terminal, whatever else goes to that terminal must go through
    the table's console, or the table's redraw (which moves the cursor up over its last
    drawing) overwrites it and leaves copies of itself behind. So `start()` points the root
    logger's handlers that write to the same terminal (stderr, as the CLI sets them up) at the
    console, and stderr too (rich's `Live` redirection): their lines scroll above the table,
    in order, formatted as before; `stop()` puts them back. Off a terminal nothing is moved."""

    STATUS_EVERY = 1.0
    SYMBOLS_PER_BUILD = 500
    """Beyond this many symbols the status figures are rebuilt less often (every
    `STATUS_EVERY` per this many symbols); prices are redrawn 4x/s whatever the count."""

    def __init__(self, feeds: Sequence[Feed | SourceFeed], console: Console | None = None) -> None:
        # off a terminal (a pipe, a log file) there is no width to fit: don't squash columns
        self.console = console or Console(width=None if sys.stdout.isatty() else 132)
        self.feeds = feeds
        self.last: dict[str, Tick] = {}
        self.live: Live | None = None
        self._records: list[AdapterStatus] = []
        self._built = -math.inf
        self._moved: list[tuple[logging.StreamHandler[TextIO], TextIO]] = []

    def __call__(self, tick: Tick) -> None:
        self.last[tick.symbol] = tick

    def render(self) -> Group:
        captions = []
        if not self._records:  # before start(), or rendered on its own: build them now
            self._records = [feed.status_record() for feed in self.feeds]
        for st in self._records:
            if st.source is not None:
                src = st.source
                lag = src.get("lag_ms")
                captions.append(
                    f"{st.display_name}: {st.state} from {src.get('name', 'a source')} "
                    f"{src.get('url', '')}, {st.updates_per_second:.1f} upd/s, "
                    f"lag {'—' if lag is None else f'{lag:.1f} ms'}, "
                    f"{st.reconnects} reconnects, {src.get('errors', 0)} errors"
                )
                continue
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
        # each symbol with what its row takes from its adapter: connection uptimes, errors per
        # minute, and whether it is read from a source (no connection of ours to time)
        shown_symbols = []
        for st in self._records:
            uptimes = {c.id: c.uptime for c in st.connections}
            errors = str(sum(st.errors_per_minute.values()))
            sourced = st.source is not None
            shown_symbols += [(s, uptimes, errors, sourced) for s in st.symbols.values()]
        if self.console.is_terminal:
            # a terminal shows what fits its height: formatting (and rich laying out) every
            # row of `run --all` 4x/s cost a whole core; the symbols not streamed over the
            # WebSocket (polled, connecting) come first, so a problem is never cropped away
            room = max(3, self.console.height - len(captions) - _TABLE_CHROME_LINES)
            if len(shown_symbols) > room:
                shown_symbols.sort(key=lambda shown: shown[0].transport == "websocket")
                hidden = len(shown_symbols) - (room - 1)
                shown_symbols = shown_symbols[: room - 1]
                captions.append(
                    f"… and {hidden:,} more symbols, streaming (all of them: --serve's "
                    "/status, or --format jsonl)"
                )
        rows: list[tuple[str, ...]] = []
        for s, uptimes, errors, sourced in shown_symbols:
            t = self.last.get(s.symbol)
            lat = s.latency_corrected_ms or s.latency_ms
            uptime = uptimes.get(s.connection) if s.connection is not None else None
            up = "—" if sourced else _duration(uptime)  # "—", not "down": not ours to time
            rows.append((
                s.symbol,
                f"{t.bid:.8g}" if t else "",
                f"{t.ask:.8g}" if t else "",
                f"{t.last:.8g}" if t and t.last is not None else "—",
                s.transport,
                s.breaker,
                f"{s.updates_per_second:.1f}",
                f"{lat.p50:.1f}" if lat.p50 is not None else "—",
                f"{lat.p99:.1f}" if lat.p99 is not None else "—",
                up,
                errors,
            ))  # fmt: skip
        widths = {
            col: max(_MIN_WIDTH.get(col, 0), cell_len(col), *(cell_len(r[i]) for r in rows))
            for i, col in enumerate(COLUMNS)
        }
        shown = fit_columns(widths, self.console.width)
        return draw_table(shown, widths, rows, captions, self.console.width)

    def start(self) -> None:
        shared = self.console.is_terminal and _same_terminal(self.console.file, sys.stderr)
        self.live = Live(
            self.render(),
            console=self.console,
            refresh_per_second=4,
            redirect_stderr=shared,  # stderr elsewhere (`2> file`): it stays there
        )
        self.live.start()
        proxy = sys.stderr  # with `shared`, rich's: it prints through the console
        if not shared or not isinstance(proxy, FileProxy):
            return
        for handler in logging.getLogger().handlers:
            if (
                type(handler) is logging.StreamHandler  # not a FileHandler or a subclass
                and handler.stream is not proxy
                and _same_terminal(handler.stream, self.console.file)
            ):
                old = handler.setStream(proxy)
                if old is not None:
                    self._moved.append((handler, old))

    async def refresh(self) -> None:
        # Off a terminal rich prints the table once, at `stop()`: rebuilding it 4x/s for nothing
        # cost `run --all` (2,000 rows) a quarter of its CPU and grew its memory
        # (benchmarks/all_symbols.py --format table).
        if self.live is None or not self.console.is_terminal:
            return
        now = time.monotonic()
        symbols = sum(len(st.symbols) for st in self._records)
        # a status build costs about 5 µs a symbol: with `run --all` (2,000) every 4 s
        if now - self._built >= self.STATUS_EVERY * max(1.0, symbols / self.SYMBOLS_PER_BUILD):
            self._built = now
            self._records = [await _status_of(feed) for feed in self.feeds]
        self.live.update(self.render())

    def stop(self) -> None:
        if self.live is not None:
            self._records = [feed.status_record() for feed in self.feeds]  # the final figures
            self.live.update(self.render())
            self.live.stop()
            self.live = None
            if not self.console.is_terminal:
                self.console.line()  # the last render ends without one off a terminal
        # after the live display has ended: a line logged meanwhile still went through the
        # console, which now simply prints it
        for handler, old in self._moved:
            handler.setStream(old)
        self._moved.clear()


async def _status_of(feed: Feed | SourceFeed) -> AdapterStatus:
    if isinstance(feed, SourceFeed):  # `foxtrot-stream tail`: a few counters, built at once
        return feed.status_record()
    return await adapter_status_async(feed.record())


def _same_terminal(a: object, b: object) -> bool:
    """Both files are the same terminal device (stdout and stderr of a shell, unredirected)."""
    try:
        fa, fb = a.fileno(), b.fileno()  # type: ignore[attr-defined]
        return os.isatty(fa) and os.isatty(fb) and os.fstat(fa).st_rdev == os.fstat(fb).st_rdev
    except (AttributeError, OSError, ValueError):  # a StringIO, a closed file
        return False


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "down"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"
