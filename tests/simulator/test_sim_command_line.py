"""`foxtrot-stream simulate binance` as a subprocess: it serves, runs its scripted faults,
exits 0 after --duration, and refuses a bad --fault with exit status 2.

The console script is run from this environment's bin directory: the same entry point
`uv run foxtrot-stream` starts, without uv syncing the environment from inside a test.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from pathlib import Path

import pytest
import websockets
from websockets.exceptions import ConnectionClosedError

from foxtrot_stream_binance.simulator import cli

SCRIPT = Path(sys.executable).with_name("foxtrot-stream")
URLS = re.compile(r"ws (ws://127\.0\.0\.1:(\d+)) rest (http://127\.0\.0\.1:(\d+))")


async def _simulate(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        str(SCRIPT),
        "simulate",
        "binance",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_serves_runs_the_fault_and_exits_0() -> None:
    assert SCRIPT.exists(), SCRIPT
    proc = await _simulate("--port", "0", "--duration", "2", "--fault", "drop@1")
    try:
        assert proc.stderr is not None
        first = (await asyncio.wait_for(proc.stderr.readline(), 15)).decode()
        found = URLS.search(first)
        assert found, first
        ws_url, ws_port, rest_url, rest_port = found.groups()
        assert ws_port == rest_port != "0"
        async with websockets.connect(f"{ws_url}/ws/btcusdt@bookTicker", proxy=None) as ws:
            frame = await asyncio.wait_for(ws.recv(), 2)
            assert '"s":"BTCUSDT"' in str(frame)
            with pytest.raises(ConnectionClosedError) as dropped:
                async with asyncio.timeout(3):
                    while True:
                        await ws.recv()
            assert dropped.value.rcvd is None  # drop@1: no close frame
        dropped_at = time.monotonic()
        _, err = await asyncio.wait_for(proc.communicate(), 10)
        assert proc.returncode == 0, err.decode()
        assert time.monotonic() - dropped_at < 2.0  # --duration 2 from the start
        rest = (first + err.decode()).splitlines()
        assert any("fault" in line and "drop" in line for line in rest), rest
        assert rest_url.startswith("http://127.0.0.1:")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_bad_fault_exits_2_with_a_message() -> None:
    proc = await _simulate("--port", "0", "--duration", "1", "--fault", "bogus@1")
    try:
        _, err = await asyncio.wait_for(proc.communicate(), 15)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 2
    message = err.decode()
    assert "argument --fault: expected KIND@AT" in message and "'bogus@1'" in message, message
    assert "Binance simulator" not in message  # refused before serving


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("rest429@1:2:soon", "must be a number"),
        ("rest200@1", "expected KIND@AT"),
        ("drop", "expected KIND@AT"),
        ("stall@-1:2", "expected KIND@AT"),
        ("slowrest@1:2:x", "must be a number"),
    ],
)
def test_other_bad_faults_are_usage_errors(
    spec: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same parser in-process (no interpreter start-up per case)."""
    with pytest.raises(SystemExit) as exited:
        cli.main(["--port", "0", "--duration", "1", "--fault", spec])
    assert exited.value.code == 2
    message = capsys.readouterr().err
    assert says in message and spec in message, message
