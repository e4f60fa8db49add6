"""The README's first command: `foxtrot-stream demo` narrates failover and recovery."""

from __future__ import annotations

import subprocess
import sys


def test_demo_shows_all_three_phases_and_exits_0() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "foxtrot_stream", "demo", "--duration", "12", "--format", "log"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    lines = out.splitlines()
    btc = [line for line in lines if "] BTCUSDT: " in line]
    assert [line.split("] BTCUSDT: ")[1].split(" (")[0] for line in btc] == [
        "connecting → http",  # polled until the WebSocket has proven itself
        "http → websocket",
        "websocket → http",  # the outage: polled at once
        "http → websocket",  # recovered, proven again
    ], out
    assert "simulator: outage" in out
    assert "circuit breaker opened" in out
    assert "BinanceAdapter: WebSocket connection established" in proc.stderr
    assert "BinanceAdapterWebSocket: Reconnecting..." in proc.stderr
    assert "BinanceAdapterError: WebSocket error..." in proc.stderr
    summary = next(line for line in lines if line.startswith("demo: BTCUSDT:"))
    assert "over http" in summary and "over websocket" in summary
    assert "Traceback" not in proc.stderr


def test_the_okx_demo_narrates_failover_and_recovery_too() -> None:
    """The demo runs any adapter with a simulator: OKX's, with OKX's symbols and loggers."""
    proc = subprocess.run(
        [sys.executable, "-m", "foxtrot_stream", "demo", "--adapter", "okx", "--duration", "12",
         "--format", "log"],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    btc = [line for line in out.splitlines() if "] BTC-USDT: " in line]
    assert [line.split("] BTC-USDT: ")[1].split(" (")[0] for line in btc] == [
        "connecting → http",
        "http → websocket",
        "websocket → http",
        "http → websocket",
    ], out
    assert "demo: Okx simulator on ws://127.0.0.1:" in out
    assert "simulator: outage" in out and "circuit breaker opened" in out
    assert "OkxAdapter: WebSocket connection established" in proc.stderr
    assert "OkxAdapterWebSocket: Reconnecting..." in proc.stderr
    assert "OkxAdapterError: WebSocket error..." in proc.stderr
    summary = next(line for line in out.splitlines() if line.startswith("demo: BTC-USDT:"))
    assert "over http" in summary and "over websocket" in summary
    assert "Traceback" not in proc.stderr
