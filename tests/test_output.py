"""`JsonLines` (`run --format jsonl`) against a real pipe: the loop never waits for the reader.

The writer is given the write end of an `os.pipe()` (64 KiB on Linux) and a small buffer, so a
reader that does not read fills both within a few hundred ticks. Every test also arms
`rescue`: should a write ever block the loop (the behaviour this replaces), the read end is
closed after a few seconds, so that the write fails and the test fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from foxtrot_stream.contract.model import Tick, TransportKind
from foxtrot_stream.surfaces.output import JsonLines, _encode

RESCUE_AFTER = 10.0


def tick(i: int) -> Tick:
    return Tick(
        adapter="binance",
        symbol="BTCUSDT",
        bid=60000.0 + i / 100,
        bid_qty=1.5,
        ask=60000.01 + i / 100,
        ask_qty=2.25,
        last=60000.0,
        seq=i,
        trade_id=None,
        exchange_ts=None,
        received_ts=1_700_000_000_000_000_000 + i,
        transport=TransportKind.WEBSOCKET,
    )


class Pipe:
    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        self._closed: set[int] = set()
        self._rescue = threading.Timer(RESCUE_AFTER, self.close_read)
        self._rescue.start()

    def close_read(self) -> None:
        self._close(self.r)

    def _close(self, fd: int) -> None:
        if fd not in self._closed:
            self._closed.add(fd)
            os.close(fd)

    def read_all(self) -> bytes:
        """Everything in the pipe now, without waiting for more."""
        os.set_blocking(self.r, False)
        chunks = []
        while True:
            try:
                chunk = os.read(self.r, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        self._rescue.cancel()
        self._close(self.r)
        self._close(self.w)


@pytest.fixture
def pipe() -> Iterator[Pipe]:
    p = Pipe()
    yield p
    p.close()


def seqs(data: bytes) -> list[int]:
    """The seq of every line; each line must be a whole JSON object ending in a newline."""
    assert data == b"" or data.endswith(b"\n"), data[-200:]
    return [json.loads(line)["seq"] for line in data.splitlines()]


async def write_ticks(writer: JsonLines, n: int, *, every: int = 100) -> float:
    """Put n ticks to the writer as the feed would, letting the loop run every `every` ticks;
    meanwhile a task sleeps 10 ms again and again. Returns the latest those sleeps woke."""
    late = 0.0
    done = False

    async def sleeper() -> None:
        nonlocal late
        while not done:
            t = time.monotonic()
            await asyncio.sleep(0.01)
            late = max(late, time.monotonic() - t - 0.01)

    task = asyncio.create_task(sleeper())
    for i in range(n):
        writer(tick(i))
        if i % every == every - 1:
            await asyncio.sleep(0)
    await asyncio.sleep(0.05)
    done = True
    await task
    return late


async def test_full_pipe_drops_and_counts_and_never_blocks_the_loop(pipe: Pipe) -> None:
    writer = JsonLines(pipe.w, max_bytes=16 * 1024, flush_timeout=0.2)
    n = 5000  # about 1.1 MB against a 64 KiB pipe and a 16 KiB buffer: nobody reads
    started = time.monotonic()
    late = await write_ticks(writer, n)
    elapsed = time.monotonic() - started
    assert elapsed < 2.0, f"writing {n} ticks to a full pipe took {elapsed:.2f} s"
    assert late < 0.2, f"a 10 ms sleep woke {late * 1000:.0f} ms late: the loop was blocked"
    assert writer.dropped > n // 2  # most could not fit
    assert writer.lines + writer.dropped + writer.buffered == n  # every tick accounted for

    started = time.monotonic()
    await writer.aclose()
    closing = time.monotonic() - started
    assert closing < 0.2 + JsonLines.JOIN_GRACE + 0.2, f"aclose took {closing:.2f} s"
    assert writer.buffered == 0
    assert writer.lines + writer.dropped == n
    got = seqs(pipe.read_all())
    assert len(got) == writer.lines > 0
    assert got[0] == 0
    assert got == sorted(set(got))  # in order, none twice (gaps where ticks were dropped)


async def test_close_flushes_to_a_reader_that_comes_back_in_time(pipe: Pipe) -> None:
    writer = JsonLines(pipe.w, flush_timeout=2.0)  # the default 1 MiB buffer
    n = 2000  # about 440 KB: more than the pipe holds, less than the buffer
    await write_ticks(writer, n)
    assert writer.dropped == 0
    assert 0 < writer.lines < n  # the pipe is full, the rest is buffered

    received: list[bytes] = []

    def reader() -> None:
        time.sleep(0.1)  # comes back after the close started
        os.set_blocking(pipe.r, True)
        while chunk := os.read(pipe.r, 1 << 16):
            received.append(chunk)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    await writer.aclose()
    assert writer.lines == n
    assert writer.dropped == 0
    os.close(pipe.w)  # the writer never closes the descriptor it was given: EOF for the reader
    pipe._closed.add(pipe.w)
    thread.join(5)
    assert seqs(b"".join(received)) == list(range(n))


async def test_close_is_bounded_when_the_reader_never_reads(pipe: Pipe) -> None:
    writer = JsonLines(pipe.w, max_bytes=256 * 1024, flush_timeout=0.3)
    n = 1000  # about 220 KB: fills the pipe and part of the buffer
    await write_ticks(writer, n)
    assert writer.dropped == 0
    buffered = writer.buffered
    assert buffered > 0

    started = time.monotonic()
    await writer.aclose()
    closing = time.monotonic() - started
    assert 0.25 < closing < 0.3 + JsonLines.JOIN_GRACE + 0.2, f"aclose took {closing:.2f} s"
    assert writer.dropped == buffered  # what was still buffered when time ran out
    assert writer.lines + writer.dropped == n
    writer(tick(n))  # after the close: counted, not queued for a thread that is gone
    assert writer.dropped == buffered + 1
    assert seqs(pipe.read_all()) == list(range(writer.lines))


async def test_a_slow_reader_gets_whole_lines_and_the_drops_are_counted(pipe: Pipe) -> None:
    writer = JsonLines(pipe.w, max_bytes=8 * 1024, flush_timeout=0.5)
    received: list[bytes] = []
    stop = threading.Event()

    def slow_reader() -> None:
        os.set_blocking(pipe.r, True)
        while not stop.is_set():
            received.append(os.read(pipe.r, 777))  # odd sizes: lines arrive cut anywhere
            time.sleep(0.001)

    thread = threading.Thread(target=slow_reader, daemon=True)
    thread.start()
    n = 20_000
    late = await write_ticks(writer, n, every=20)
    await writer.aclose()
    stop.set()
    thread.join(5)
    received.append(pipe.read_all())
    got = seqs(b"".join(received))
    assert late < 0.2, f"a 10 ms sleep woke {late * 1000:.0f} ms late"
    assert writer.dropped > 0
    assert len(got) == writer.lines
    assert writer.lines + writer.dropped == n
    assert got == sorted(set(got))  # in order, none twice


async def test_a_reader_that_goes_away_stops_the_writing_not_the_feed(pipe: Pipe) -> None:
    writer = JsonLines(pipe.w, flush_timeout=0.2)
    writer(tick(0))
    await asyncio.sleep(0.05)
    assert seqs(pipe.read_all()) == [0]
    pipe.close_read()  # `| head` is done
    for i in range(1, 50):
        writer(tick(i))
        await asyncio.sleep(0.001)
    assert writer.broken
    await writer.aclose()
    assert writer.lines == 1
    assert writer.dropped == 0  # not a slow reader: no warning about drops
    assert writer.error is None


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
async def test_a_write_error_is_logged_once_and_the_feed_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fd = os.open("/dev/full", os.O_WRONLY)  # every write: ENOSPC, as on a full disk
    try:
        writer = JsonLines(fd, flush_timeout=0.2)
        for i in range(100):
            writer(tick(i))
            await asyncio.sleep(0.001)
        await writer.aclose()
    finally:
        os.close(fd)
    assert isinstance(writer.error, OSError)
    assert writer.lines == 0
    assert writer.dropped == 0  # not the reader's slowness
    messages = [
        r.getMessage() for r in caplog.records if r.name == "foxtrot_stream.surfaces.output"
    ]
    assert len(messages) == 1
    assert messages[0].startswith("stopped writing to stdout: [Errno 28]")


# --- LiveTable: the columns a terminal's width has room for ---------------------------------


def test_fit_columns_keeps_the_prices_and_drops_the_least_important_first() -> None:
    from foxtrot_stream.surfaces.output import COLUMN_PRIORITY, COLUMNS, fit_columns

    widths = {c: max(len(c), 8) for c in COLUMNS}
    assert fit_columns(widths, 500) == list(COLUMNS)
    shown = [fit_columns(widths, room) for room in range(20, 140)]
    for cols in shown:
        assert {"symbol", "bid", "ask"} <= set(cols)
        assert cols == [c for c in COLUMNS if c in cols]  # display order kept
    # a head of the priorities, longer as the room grows: resizing never swaps columns
    for narrow, wide in itertools.pairwise(shown):
        assert set(narrow) <= set(wide)
        assert set(wide) == set(COLUMN_PRIORITY[: len(wide)])
    assert fit_columns(widths, 20) == ["symbol", "bid", "ask"]
    # 8 cells per column, 3 more per column and 1 for the table: 7 columns in 78 cells, not 77
    eights = dict.fromkeys(COLUMNS, 8)
    assert len(fit_columns(eights, 77)) == 6 and len(fit_columns(eights, 78)) == 7


_ids = st.none() | st.integers(0, 2**63 - 1)
_prices = st.floats(allow_nan=False, allow_infinity=False)


@given(
    st.builds(Tick, st.sampled_from(["binance", "okx"]), st.text(max_size=12), _prices, _prices,
              _prices, _prices, st.none() | _prices, _ids, _ids, _ids, st.integers(0, 2**63 - 1),
              st.sampled_from(list(TransportKind)))
)  # fmt: skip
def test_a_jsonl_line_is_the_ticks_json_dict(tick: Tick) -> None:
    """`JsonLines` encodes the `Tick` itself (one C call): the line is `to_json_dict()`."""
    line = _encode(tick) + b"\n"
    assert line.endswith(b"}\n") and line.count(b"\n") == 1
    assert json.loads(line) == json.loads(json.dumps(tick.to_json_dict()))
