"""`foxtrot-stream run` as a user runs it: a subprocess against the simulator."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import re
import signal
import sys
import termios
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from foxtrot_stream_binance.simulator import Simulator, SimulatorConfig

from e2e_helpers import FAST, SYMBOLS, wait_for

KEYS = {
    "adapter",
    "symbol",
    "bid",
    "bid_qty",
    "ask",
    "ask_qty",
    "last",
    "seq",
    "exchange_ts",
    "received_ts",
    "transport",
}


async def start_run(config: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "foxtrot_stream",
        "run",
        "--config",
        str(config),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


def write_config(tmp_path: Path, sim: Simulator, **extra: object) -> Path:
    path = tmp_path / "vt_setting.json"
    path.write_text(json.dumps(FAST | sim.settings() | extra))
    return path


async def test_jsonl_killed_with_sigint_exits_0_with_whole_lines(
    sim: Simulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path, sim, **{"websocket.binance.symbols": ["BTCUSDT"]})
    proc = await start_run(config, "--symbols", "BTCUSDT", "ETHUSDT", "--format", "jsonl")
    assert proc.stdout is not None and proc.stderr is not None
    seen: set[tuple[str, str]] = set()
    lines: list[bytes] = []
    async with asyncio.timeout(15):
        while (
            ("BTCUSDT", "websocket") not in seen
            or ("ETHUSDT", "http") not in seen
            or len(lines) < 20
        ):
            line = await proc.stdout.readline()
            assert line, (await proc.stderr.read()).decode()
            lines.append(line)
            obj = json.loads(line)
            seen.add((obj["symbol"], obj["transport"]))
    proc.send_signal(signal.SIGINT)
    rest, err = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 0, err.decode()
    lines += rest.splitlines(keepends=True)
    for line in lines:
        assert line.endswith(b"\n")
        obj = json.loads(line)
        assert set(obj) >= KEYS
        assert obj["adapter"] == "binance"
        assert isinstance(obj["received_ts"], int) and obj["received_ts"] > 1_600_000_000 * 10**9
    # BTCUSDT is in websocket.binance.symbols, ETHUSDT is not: it is polled (BTCUSDT is also
    # polled until its WebSocket has proven itself)
    assert {("BTCUSDT", "websocket"), ("ETHUSDT", "http")} <= seen
    assert ("ETHUSDT", "websocket") not in seen
    assert b"Traceback" not in err
    assert b"BinanceAdapter: WebSocket connection established" in err  # logs go to stderr


async def test_duration_stops_by_itself(sim: Simulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, sim)
    proc = await start_run(config, "--symbols", "BNBUSDT", "--format", "jsonl", "--duration", "1")
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()
    assert out.count(b"\n") > 5
    assert b"foxtrot_stream: event loop: asyncio" in err  # tests/conftest.py asks for it


async def test_runs_on_uvloop_when_asked(tmp_path: Path) -> None:
    """`--loop uvloop` (what `auto` takes when uvloop is installed): the same feed, `--all`
    over two connections, on uvloop; the startup log says which loop runs."""
    pytest.importorskip("uvloop")
    config = SimulatorConfig(symbols=("BTCUSDT",), synthetic=599, rate=1.0, seed=11)
    async with Simulator(config) as sim:
        path = write_config(tmp_path, sim)
        proc = await start_run(
            path, "--all", "--format", "jsonl", "--duration", "2", "--loop", "uvloop"
        )
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert b"foxtrot_stream: event loop: uvloop" in err
    assert err.count(b"WebSocket connection established") == 2
    got = {json.loads(line)["symbol"] for line in out.splitlines()}
    assert len(got) == 600


async def test_no_symbols_is_a_clear_error(sim: Simulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, sim)
    proc = await start_run(config, "--format", "jsonl")
    _out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    line = err.decode().strip()
    assert "\n" not in line  # one line says what to do
    assert "no symbols to stream: name them (--symbols BTCUSDT ETHUSDT)" in line
    assert '"websocket.binance.symbols"' in line and "--all" in line
    assert "Traceback" not in line


async def test_all_streams_every_listed_symbol_over_several_connections(tmp_path: Path) -> None:
    """`--all`: what exchangeInfo lists as trading, sharded (2 streams per symbol, 1,024 per
    connection: 2 connections for 600 symbols, most of them subscribed by paced control
    messages after the handshake), polled in one request for all of them until the WebSocket
    has proven each."""
    config = SimulatorConfig(symbols=("BTCUSDT",), synthetic=599, rate=1.0, seed=11)
    async with Simulator(config) as sim:
        path = write_config(tmp_path, sim)
        proc = await start_run(path, "--all", "--format", "jsonl", "--duration", "4")
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()
        listed = set(config.all_symbols())
        got = {json.loads(line)["symbol"] for line in out.splitlines()}
        assert got == listed and len(listed) == 600
        assert b"--all: 600 symbols the exchange lists as trading" in err
        assert err.count(b"WebSocket connection established") == 2
        long_lines = [line for line in err.splitlines() if len(line) > 300]
        assert not long_lines  # hundreds of symbols are summed up, not listed
        # polled with one request for every book ticker, not a URL naming 400 symbols
        assert sim.stats.rest_by_path.get("/api/v3/ticker/bookTicker", 0) >= 1
        assert sim.stats.rest_longest_query < 200


async def test_http_only_is_said_once_at_start(sim: Simulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, sim, **{"websocket.enabled": False})
    proc = await start_run(config, "--symbols", "BTCUSDT", "--format", "jsonl", "--duration", "1")
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()
    said = [line for line in err.decode().splitlines() if line.startswith("foxtrot-stream:")]
    assert said == [
        "foxtrot-stream: websocket.enabled is false: polling over HTTP every 0.2s, no "
        f'WebSocket; set "websocket.enabled": true in {config} to stream'
    ]
    assert {json.loads(line)["transport"] for line in out.splitlines()} == {"http"}


async def test_bad_settings_exit_2_without_traceback(tmp_path: Path) -> None:
    config = tmp_path / "bad.json"
    config.write_text('{"websocket.heartbeat.interval": -1}')
    proc = await start_run(config, "--symbols", "BTCUSDT")
    _out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert b"websocket.heartbeat.interval = -1: expected a number greater than 0" in err
    assert b"Traceback" not in err


async def test_only_unknown_symbols_exit_2_naming_them(sim: Simulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, sim)
    proc = await start_run(config, "--symbols", "NOPEUSDT", "--format", "jsonl")
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert out == b""
    assert b"NOPEUSDT refused: NOPEUSDT is not listed on Binance" in err
    assert b"foxtrot-stream: nothing to stream: NOPEUSDT refused" in err
    assert b"Traceback" not in err


# --- a reader of stdout that does not read --------------------------------------------------------
#
# The child's stdout is the write end of an os.pipe() that the test leaves unread (asyncio's
# stdout=PIPE would read it into the StreamReader, and Process.wait() would wait for its EOF).
# At 1,000 updates/s per symbol (about 3,900 ticks/s with the trades, 240 bytes each) the
# 64 KiB pipe is full within 0.1 s and the 1 MiB buffer of `JsonLines` in about a second.

DROPPED = re.compile(rb"foxtrot-stream: (\d+) ticks dropped: the reader of stdout was too slow")


@pytest.fixture
async def busy_sim() -> AsyncIterator[Simulator]:
    config = SimulatorConfig(
        symbols=SYMBOLS, rate=1000.0, ping_interval=0.5, pong_timeout=2.0, seed=7
    )
    async with Simulator(config) as s:
        yield s


class Unread:
    """`run --format jsonl` with stdout into a pipe nobody reads, stderr read as it comes."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        self.proc: asyncio.subprocess.Process | None = None
        self.err = b""
        self.connected = asyncio.Event()
        self.connected_at = 0.0
        self._reader: asyncio.Task[None] | None = None

    async def start(self, config: Path, *args: str) -> asyncio.subprocess.Process:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "foxtrot_stream", "run", "--config", str(config),
            "--symbols", *SYMBOLS, "--format", "jsonl", *args,
            stdout=self.w, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        os.close(self.w)
        self._reader = asyncio.create_task(self._read_stderr())
        return self.proc

    async def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.err += line
            if b"WebSocket connection established" in line and not self.connected.is_set():
                self.connected_at = time.monotonic()
                self.connected.set()

    async def wait_connected(self) -> None:
        async with asyncio.timeout(20):
            await self.connected.wait()

    def pending(self) -> int:
        """Bytes written to the pipe and not read."""
        buf = bytearray(4)
        fcntl.ioctl(self.r, termios.FIONREAD, buf)
        return int.from_bytes(buf, sys.byteorder)

    async def wait_full(self, within: float = 10.0) -> None:
        """Until what the pipe holds (at least 8 KiB) has not grown for 0.3 s."""
        held, since = -1, time.monotonic()
        deadline = since + within
        while True:
            now, pending = time.monotonic(), self.pending()
            if pending != held:
                held, since = pending, now
            elif held >= 8192 and now - since >= 0.3:
                return
            if now > deadline:
                raise AssertionError(f"the pipe is not full after {within} s: {held} bytes")
            await asyncio.sleep(0.02)

    async def exited_within(self, seconds: float) -> bool:
        assert self.proc is not None
        try:
            async with asyncio.timeout(seconds):
                await self.proc.wait()
        except TimeoutError:
            return False
        return True

    def read_out(self) -> bytes:
        os.set_blocking(self.r, False)
        chunks = []
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(self.r, 1 << 16):
                chunks.append(chunk)
        return b"".join(chunks)

    def close_read(self) -> None:
        if self.r >= 0:
            os.close(self.r)
            self.r = -1

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()  # still running: the test has failed already; don't leave it
            await self.proc.wait()
        if self._reader is not None:
            await self._reader
        self.close_read()


@pytest.fixture
async def unread() -> AsyncIterator[Unread]:
    u = Unread()
    yield u
    await u.close()


def assert_whole_lines(out: bytes) -> int:
    assert out.endswith(b"\n"), out[-300:]
    lines = out.splitlines(keepends=True)
    for line in lines:
        assert set(json.loads(line)) >= KEYS, line
    return len(lines)


async def test_unread_stdout_with_duration_exits_within_1s_counting_the_drops(
    busy_sim: Simulator, tmp_path: Path, unread: Unread
) -> None:
    proc = await unread.start(write_config(tmp_path, busy_sim), "--duration", "2")
    await unread.wait_connected()  # the duration runs from about now (after the feed started)
    exited = await unread.exited_within(3.5)
    took = time.monotonic() - unread.connected_at
    assert exited, f"still running {took:.1f} s after connecting with --duration 2"
    assert took < 3.5, f"exited {took:.2f} s after connecting with --duration 2"
    assert proc.returncode == 0, unread.err.decode()
    assert b"Traceback" not in unread.err
    found = DROPPED.search(unread.err)
    assert found, unread.err.decode()
    assert int(found[1]) > 1000
    assert assert_whole_lines(unread.read_out()) > 50  # what filled the pipe: whole lines


async def test_sigterm_while_stdout_is_not_read_exits_within_1s(
    busy_sim: Simulator, tmp_path: Path, unread: Unread
) -> None:
    proc = await unread.start(write_config(tmp_path, busy_sim))
    await unread.wait_connected()
    # the pipe is full: a write to it would block. What it holds then depends on the sizes of
    # the writes (Linux gives a write that does not fit the last page a new one: 16 pages of
    # 2.1 KB writes are full at 34 KB), so full is "stopped growing" at 1,000 ticks a second.
    await unread.wait_full()
    await asyncio.sleep(0.5)  # and about 500 KB more wait in the buffer, never to be read
    proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    exited = await unread.exited_within(3.0)
    took = time.monotonic() - sent
    assert exited, f"still running {took:.1f} s after SIGTERM"
    assert took < 1.0, f"exited {took:.2f} s after SIGTERM"
    assert proc.returncode == 0, unread.err.decode()
    assert b"Traceback" not in unread.err
    assert DROPPED.search(unread.err), unread.err.decode()
    assert assert_whole_lines(unread.read_out()) > 50


async def test_reader_that_goes_away_keeps_streaming_to_exit_0(
    sim: Simulator, tmp_path: Path, unread: Unread
) -> None:
    proc = await unread.start(write_config(tmp_path, sim), "--duration", "2")
    await wait_for(lambda: unread.pending() > 1000, 15, "a few lines")
    assert_whole_lines(unread.read_out().rpartition(b"\n")[0] + b"\n")
    unread.close_read()  # `| head`: the reader is done and goes away
    assert await unread.exited_within(15)
    assert proc.returncode == 0, unread.err.decode()
    assert b"Traceback" not in unread.err
    assert b"ticks dropped" not in unread.err  # a reader gone is not a slow reader
