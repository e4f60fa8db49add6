"""`foxtrot-stream run` as a user runs it: a subprocess against the simulator."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from foxtrot_stream_binance.simulator import Simulator

from e2e_helpers import FAST

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
        "foxtrot_stream.cli",
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


async def test_no_symbols_is_a_clear_error(sim: Simulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, sim)
    proc = await start_run(config, "--format", "jsonl")
    _out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert b"no symbols to stream: pass --symbols" in err
    assert b"Traceback" not in err


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
