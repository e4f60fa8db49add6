"""Both exchanges in one process: `run --adapter binance okx` with adapter-qualified symbols,
one output, one status page and one `/metrics`; an OKX outage never moves Binance's symbols."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from foxtrot_stream.surfaces.cli import symbol_plan
from foxtrot_stream.testing.settings import FAST_SETTINGS
from foxtrot_stream_binance.simulator import Simulator, SimulatorConfig
from foxtrot_stream_okx.simulator import OkxSimulator

BINANCE = ("BTCUSDT", "ETHUSDT")
OKX = ("BTC-USDT", "ETH-USDT")


def test_symbols_name_their_adapter_when_several_are_streamed() -> None:
    both = ["binance", "okx"]
    assert symbol_plan(both, ["okx:btc-usdt", "binance:BTCUSDT", "OKX:ETH-USDT"]) == {
        "binance": ["BTCUSDT"],
        "okx": ["BTC-USDT", "ETH-USDT"],
    }
    assert symbol_plan(both, ["okx:BTC-USDT"]) == {"binance": [], "okx": ["BTC-USDT"]}
    assert "name its adapter" in str(symbol_plan(both, ["BTCUSDT"]))
    assert "kraken is not among --adapter binance okx" in str(symbol_plan(both, ["kraken:X"]))
    assert symbol_plan(["okx"], ["btc-usdt"]) == {"okx": ["BTC-USDT"]}  # one adapter: as before


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_two_exchanges_stream_and_fail_over_independently(tmp_path: Path) -> None:
    async with (
        Simulator(SimulatorConfig(symbols=BINANCE, rate=10.0)) as binance,
        OkxSimulator(OKX, rate=10.0) as okx,
    ):
        config = tmp_path / "vt_setting.json"
        config.write_text(json.dumps(FAST_SETTINGS | binance.settings() | okx.settings()))
        port = _free_port()
        symbols = [f"binance:{s}" for s in BINANCE] + [f"okx:{s}" for s in OKX]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "foxtrot_stream", "run", "--config", str(config),
            "--adapter", "binance", "okx", "--symbols", *symbols, "--format", "jsonl",
            "--serve", f"127.0.0.1:{port}",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdout is not None
        ticks: list[tuple[float, str, str, str]] = []

        async def read_until(predicate: object, within: float) -> None:
            async with asyncio.timeout(within):
                while not predicate():  # type: ignore[operator]
                    line = await proc.stdout.readline()  # type: ignore[union-attr]
                    assert line, "run exited early"
                    t = json.loads(line)
                    ticks.append((time.monotonic(), t["adapter"], t["symbol"], t["transport"]))

        def streamed_since(since: float) -> set[tuple[str, str]]:
            return {(a, s) for at, a, s, tr in ticks if at > since and tr == "websocket"}

        try:
            everything = {("binance", s) for s in BINANCE} | {("okx", s) for s in OKX}
            await read_until(lambda: streamed_since(0) >= everything, 20)
            start = time.monotonic()
            await read_until(lambda: time.monotonic() - start > 1.0, 10)  # both proven healthy
            cut = time.monotonic()
            okx.outage(3.0)
            await read_until(lambda: time.monotonic() - cut > 1.5, 10)
            outage_status = await _get(port, "/status")
            await read_until(lambda: time.monotonic() - cut > 2.5, 10)
            during = [(a, s, tr) for at, a, s, tr in ticks if at > cut + 0.2]
            assert {s for a, s, tr in during if a == "okx" and tr == "http"} == set(OKX)
            # Binance's symbols stream on over their own connection, which never moved
            assert {s for a, s, tr in during if a == "binance" and tr == "websocket"} == set(
                BINANCE
            )
            assert binance.stats.connection_attempts == 1
            transports = {
                (a["adapter"], s): v["transport"]
                for a in outage_status["adapters"]
                for s, v in a["symbols"].items()
            }
            assert transports == {("binance", s): "websocket" for s in BINANCE} | {
                ("okx", s): "http" for s in OKX
            }
            back = time.monotonic()
            await read_until(lambda: streamed_since(back) >= everything, 20)

            status = await _get(port, "/status")
            metrics = await _get(port, "/metrics")
            assert sorted(a["adapter"] for a in status["adapters"]) == ["binance", "okx"]
            assert 'adapter="okx"' in metrics and 'adapter="binance"' in metrics
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGINT)
            _, err = await asyncio.wait_for(proc.communicate(), 15)
        assert proc.returncode == 0, err.decode()[-2000:]
        assert b"Traceback" not in err


async def _get(port: int, path: str) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}{path}") as resp,
    ):
        return await (resp.json() if path == "/status" else resp.text())
