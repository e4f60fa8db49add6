"""The live table on a real terminal: the CLI runs on a pseudo-terminal, and `pyte` (a terminal
emulator) interprets what it wrote, scrollback included.

What a person sees is checked, not the bytes: a log line that the table's redraw overwrote is in
the bytes but not on the screen, and a header row the redraw left behind is on the screen once
too often. Every run is bounded by `--duration` (and a timeout) and uses the fast timings.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import re
import struct
import subprocess
import sys
import termios
from collections.abc import Awaitable, Callable
from pathlib import Path

import pyte

from foxtrot_stream.testing import FAST_SETTINGS
from foxtrot_stream_binance.simulator import Simulator

#: Escape sequences: CSI (cursor moves, erases, colours), OSC (titles, links), two-byte ones.
ESCAPE = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[ -/]*[0-~]")
#: Lines that the run prints once each, to be found in order in the scrollback: the log lines
#: (`name: message`) and the demo's narration; not the table's caption (`BinanceAdapter:
#: streaming, 24.0 upd/s, ...`), which is redrawn.
PRINTED = re.compile(r"^(?:BinanceAdapter\w*: (?!\w+, [\d.]+ upd/s)|\[\s*\d+\.\d+s\] |demo: )")
HEADER = "┃ symbol "
TERMINAL_ENV = ("COLUMNS", "LINES", "FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")


class Terminal:
    """A pseudo-terminal of `cols` x `rows` for one command, and what it showed."""

    def __init__(self, cols: int = 80, rows: int = 30) -> None:
        self.cols, self.rows = cols, rows
        self.master, self.slave = os.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.data = bytearray()
        self.arrived = asyncio.Event()
        self.stderr = b""

    async def run(
        self,
        *args: str,
        within: float = 60.0,
        during: Callable[[Terminal], Awaitable[None]] | None = None,
        stderr_to_pipe: bool = False,
    ) -> int:
        """Run `foxtrot-stream ARGS` with stdin, stdout (and stderr, unless `stderr_to_pipe`)
        on the terminal until it exits (killed after `within` seconds: the test fails); `during`
        runs meanwhile (e.g. to script an outage)."""
        loop = asyncio.get_running_loop()
        env = {k: v for k, v in os.environ.items() if k not in TERMINAL_ENV}
        env["TERM"] = "xterm-256color"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "foxtrot_stream", *args,
            stdin=self.slave, stdout=self.slave,
            stderr=subprocess.PIPE if stderr_to_pipe else self.slave,
            env=env, start_new_session=True,
        )  # fmt: skip
        os.close(self.slave)
        eof = asyncio.Event()

        def readable() -> None:
            try:
                chunk = os.read(self.master, 1 << 16)
            except OSError:  # EIO: every writer has closed the terminal
                chunk = b""
            if chunk:
                self.data += chunk
                self.arrived.set()
            else:
                loop.remove_reader(self.master)
                eof.set()

        loop.add_reader(self.master, readable)
        try:
            async with asyncio.timeout(within):
                if during is not None:
                    await during(self)
                if proc.stderr is not None:
                    self.stderr = await proc.stderr.read()
                await proc.wait()
                await eof.wait()
        finally:
            loop.remove_reader(self.master)
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            os.close(self.master)
        assert proc.returncode is not None
        return proc.returncode

    async def wait_for(self, text: bytes, within: float) -> None:
        async with asyncio.timeout(within):
            while text not in self.data:
                self.arrived.clear()
                await self.arrived.wait()

    def lines(self) -> list[str]:
        """The scrollback and the screen, as the emulator shows them, one row each."""
        screen = pyte.HistoryScreen(self.cols, self.rows, history=100_000)
        pyte.ByteStream(screen).feed(bytes(self.data))
        history = ["".join(line[x].data for x in range(self.cols)) for line in screen.history.top]
        return [row.rstrip() for row in (*history, *screen.display)]

    def printed(self) -> list[str]:
        """The log and narration lines in the order the program wrote them (from the bytes:
        what was written, whether or not it stayed visible)."""
        text = ESCAPE.sub(b"", bytes(self.data)).decode(errors="replace")
        return [line for line in re.split(r"[\r\n]", text) if PRINTED.match(line)]


def assert_in_order(expected: list[str], rows: list[str]) -> None:
    """Each expected line appears in the rows, in order. Whitespace is ignored, so a line
    wrapped at the terminal's width (by the terminal or by the console) still matches."""
    screen = re.sub(r"\s", "", "".join(rows))
    at = 0
    for line in expected:
        found = screen.find(re.sub(r"\s", "", line), at)
        assert found >= 0, f"not on the screen (or out of order): {line!r}\n" + "\n".join(rows)
        at = found + 1


def table_cells(rows: list[str]) -> dict[str, dict[str, str]]:
    """The last table on the screen: symbol → column → cell text."""
    start = max(i for i, row in enumerate(rows) if row.startswith(HEADER))
    columns = [c.strip() for c in rows[start].strip("┃").split("┃")]
    cells: dict[str, dict[str, str]] = {}
    for row in rows[start + 2 :]:
        if not row.startswith("│"):
            break
        values = [c.strip() for c in row.strip("│").split("│")]
        cells[values[0]] = dict(zip(columns, values, strict=True))
    return cells


PRICE = re.compile(r"^\d+(\.\d+)?$")


def assert_prices_visible(rows: list[str], symbols: tuple[str, ...]) -> None:
    cells = table_cells(rows)
    assert set(cells) == set(symbols), "\n".join(rows)
    for symbol in symbols:
        for column in ("bid", "ask"):
            assert PRICE.match(cells[symbol][column]), (symbol, column, cells[symbol])


def assert_one_table(rows: list[str]) -> None:
    headers = [row for row in rows if row.startswith(HEADER)]
    assert len(headers) == 1, f"{len(headers)} header rows:\n" + "\n".join(rows)


def assert_no_table(rows: list[str]) -> None:
    assert not [row for row in rows if row.startswith(HEADER)], "\n".join(rows)


DEMO_SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT")


async def test_demo_at_80_columns_logs_scroll_above_one_table_with_its_prices() -> None:
    """The demo's outage at 2 s: reconnection attempts, the breaker opening, a probe, the
    breaker closing; all logged while the table is live."""
    term = Terminal(cols=80, rows=30)
    assert await term.run("demo", "--duration", "10", within=60) == 0
    rows = term.lines()
    printed = term.printed()
    assert_one_table(rows)
    assert_in_order(printed, rows)
    text = "\n".join(rows)
    for line in ("BinanceAdapterWebSocket: Reconnecting...", "circuit breaker opened",
                 "circuit breaker OPEN after 3 consecutive failures", "circuit breaker closed",
                 "demo: done"):  # fmt: skip
        assert line in text, line
    # the logs were printed while the table was live (not all before or after it)
    assert any(line.startswith("BinanceAdapterWebSocket: Reconnecting...") for line in printed)
    assert_prices_visible(rows, DEMO_SYMBOLS)
    assert max(len(row) for row in rows) <= 80


def write_config(tmp_path: Path, sim: Simulator) -> Path:
    path = tmp_path / "vt_setting.json"
    path.write_text(json.dumps(FAST_SETTINGS | sim.settings()))
    return path


async def outage_once_connected(term: Terminal, sim: Simulator) -> None:
    await term.wait_for(b"WebSocket connection established", 15)
    await asyncio.sleep(0.5)  # the table is live, the symbols proven
    sim.outage(1.0)


async def test_run_at_80_columns_keeps_reconnect_and_breaker_lines(
    sim: Simulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path, sim)
    term = Terminal(cols=80, rows=24)

    async def during(t: Terminal) -> None:
        await outage_once_connected(t, sim)

    code = await term.run(
        "run", "--config", str(config), "--symbols", "BTCUSDT", "ETHUSDT", "BNBUSDT",
        "--duration", "5", during=during, within=30,
    )  # fmt: skip
    assert code == 0
    rows = term.lines()
    assert_one_table(rows)
    printed = term.printed()
    assert_in_order(printed, rows)
    text = "\n".join(rows)
    assert "BinanceAdapterWebSocket: Reconnecting..." in text
    assert "circuit breaker OPEN after 3 consecutive failures" in text
    assert "circuit breaker CLOSED (was HALF_OPEN)" in text
    assert_prices_visible(rows, ("BTCUSDT", "ETHUSDT", "BNBUSDT"))
    assert max(len(row) for row in rows) <= 80


async def test_stderr_redirected_keeps_the_logs_off_the_terminal(
    sim: Simulator, tmp_path: Path
) -> None:
    """`run 2> file`: the table on the terminal, the log lines in the file, not moved."""
    config = write_config(tmp_path, sim)
    term = Terminal(cols=100, rows=24)
    code = await term.run(
        "run", "--config", str(config), "--symbols", "BTCUSDT", "--duration", "1.5",
        stderr_to_pipe=True, within=30,
    )  # fmt: skip
    assert code == 0
    assert b"BinanceAdapter: WebSocket connection established" in term.stderr
    assert b"\x1b" not in term.stderr
    rows = term.lines()
    assert_one_table(rows)
    assert "WebSocket connection established" not in "\n".join(rows)


async def test_off_a_terminal_no_escape_codes(sim: Simulator, tmp_path: Path) -> None:
    """Pipes: `run --format table` prints its final table once, plain; `--format jsonl` only
    JSON lines; neither writes an escape sequence, to stdout or stderr."""
    config = write_config(tmp_path, sim)
    for fmt in ("table", "jsonl"):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "foxtrot_stream", "run", "--config", str(config),
            "--symbols", "BTCUSDT", "--duration", "1", "--format", fmt,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == 0, err.decode()
        assert b"\x1b" not in out and b"\x1b" not in err, fmt
        assert b"BinanceAdapter: WebSocket connection established" in err
        if fmt == "table":
            assert out.decode().count(HEADER) == 1, out.decode()
        else:
            for line in out.splitlines():
                json.loads(line)


def test_the_terminal_helpers_see_what_a_terminal_shows() -> None:
    """The emulator's view: a line overwritten after a cursor move up is gone; a wrapped
    line still matches."""
    term = Terminal(cols=20, rows=5)
    with contextlib.suppress(OSError):
        os.close(term.slave)
    os.close(term.master)
    term.data += b"first line\r\nsecond line\r\n\x1b[1A\x1b[2Kthird\r\n" + b"x" * 25
    rows = term.lines()
    assert "second line" not in "\n".join(rows)
    assert_in_order(["first line", "third", "x" * 25], rows)
    assert term.printed() == []
