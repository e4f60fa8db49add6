"""`foxtrot-stream simulate binance`: arguments, scripted faults, the URL line, clean exits."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from foxtrot_stream_binance.simulator import Simulator
from foxtrot_stream_binance.simulator.cli import FaultSpec, build_parser, main, parse_fault, serve

from simwire import messages

URLS = re.compile(r"ws (ws://127\.0\.0\.1:(\d+)) rest (http://127\.0\.0\.1:(\d+))")
SCRIPT = Path(sys.executable).with_name("foxtrot-stream")
"""The console script, from this environment's bin directory: the entry point `uv run
foxtrot-stream` starts, without uv syncing the environment from inside a test."""


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("drop@10", FaultSpec("drop", 10.0)),
        ("refuse@5:10", FaultSpec("refuse", 5.0, 10.0)),
        ("stall@20:5", FaultSpec("stall", 20.0, 5.0)),
        ("silence@8:4:BTCUSDT,ETHUSDT", FaultSpec("silence", 8.0, 4.0, "BTCUSDT,ETHUSDT")),
        ("malformed@3:6", FaultSpec("malformed", 3.0, 6.0)),
        ("shutdown@30:0.5", FaultSpec("shutdown", 30.0, 0.5)),
        ("rest429@15:3:2", FaultSpec("rest429", 15.0, 3.0, "2")),
        ("slowrest@1.5:10:0.25", FaultSpec("slowrest", 1.5, 10.0, "0.25")),
        ("slowhandshake@2:5:0.5", FaultSpec("slowhandshake", 2.0, 5.0, "0.5")),
        ("slowhandshake@2:5", FaultSpec("slowhandshake", 2.0, 5.0)),
        ("flap@1:3:0.3", FaultSpec("flap", 1.0, 3.0, "0.3")),
        ("refusesub@2:5:BTCUSDT,ETHUSDT", FaultSpec("refusesub", 2.0, 5.0, "BTCUSDT,ETHUSDT")),
        ("resetids@3:btcusdt", FaultSpec("resetids", 3.0, symbol="BTCUSDT")),
        ("jumpids@3:BTCUSDT", FaultSpec("jumpids", 3.0, symbol="BTCUSDT")),
        ("jumpids@3:1000SATSUSDT:7", FaultSpec("jumpids", 3.0, extra="7", symbol="1000SATSUSDT")),
    ],
)
def test_fault_specs(text: str, spec: FaultSpec) -> None:
    assert parse_fault(text) == spec
    assert str(spec) == text.replace("btcusdt", "BTCUSDT")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("drop", "expected KIND@AT"),
        ("boom@1", "expected KIND@AT"),
        ("bogus@1", "expected KIND@AT"),
        ("stall@x", "expected KIND@AT"),
        ("stall@-1:2", "expected KIND@AT"),
        ("rest200@1:1", "expected KIND@AT"),
        ("rest42@1", "expected KIND@AT"),
        ("rest429@1:2:soon", "must be a number"),
        ("slowrest@1:2:fast", "must be a number"),
        ("slowhandshake@1:2:slow", "must be a number"),
        ("flap@1:2:up", "must be a number"),
        ("refusesub@2:5", "expected refusesub@AT:SECONDS:SYMBOL"),
        ("refusesub@2:5:BTCUSDT,", "expected refusesub@AT:SECONDS:SYMBOL"),
        ("resetids@3", "expected resetids@AT:SYMBOL"),
        ("resetids@3:BTCUSDT:5", "expected resetids@AT:SYMBOL"),
        ("jumpids@3:BTC/USDT", "expected jumpids@AT:SYMBOL[:BY]"),
        ("jumpids@3:BTCUSDT:1.5", "expected jumpids@AT:SYMBOL[:BY]"),
        ("jumpids@3:BTCUSDT:0", "BY must be >= 1"),
        ("@3", "expected KIND@AT"),
    ],
)
def test_bad_fault_specs_are_usage_errors(
    text: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--port", "0", "--duration", "1", "--fault", text])
    assert exit_.value.code == 2
    message = capsys.readouterr().err
    assert "argument --fault" in message and says in message and repr(text) in message, message
    assert "Binance simulator" not in message  # refused before serving


@pytest.mark.parametrize(
    ("text", "logged"),
    [
        ("slowhandshake@0:5:0.5", "slow_handshake(5.0, 0.5)"),
        ("slowhandshake@0:5", "slow_handshake(5.0, None)"),
        ("flap@0:3:0.3", "flap(3.0, 0.3)"),
        ("flap@0", "flap(10.0, 0.0)"),
        ("refusesub@0:5:btcusdt,ETHUSDT", "refuse_subscriptions(5.0, ['BTCUSDT', 'ETHUSDT'])"),
        ("resetids@0:btcusdt", "reset_ids(BTCUSDT)"),
        ("jumpids@0:ETHUSDT", "jump_ids(ETHUSDT, 1000000000)"),
        ("jumpids@0:ETHUSDT:18446744073709551616", "jump_ids(ETHUSDT, 18446744073709551616)"),
    ],
)
def test_fault_specs_apply_to_the_simulator(text: str, logged: str) -> None:
    sim = Simulator()
    parse_fault(text).apply(sim)
    assert [what for _t, what in sim.faults.log] == [logged]


def test_faults_accept_several_after_one_flag() -> None:
    args = build_parser().parse_args(["--fault", "drop@1", "stall@2:1", "--rate", "5"])
    assert [f.kind for f in args.fault] == ["drop", "stall"] and args.rate == 5.0


async def test_serve_prints_the_urls_runs_the_faults_and_stops_at_the_duration(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--port", "0", "--symbols", "btcusdt", "--rate", "40", "--duration", "0.8"]
    argv += ["--fault", "shutdown@0.3:0.1", "--symbol-rate", "BTCUSDT=40"]
    task = asyncio.create_task(serve(build_parser().parse_args(argv)))
    err = ""
    while not (m := URLS.search(err)):
        await asyncio.sleep(0.01)
        err += capsys.readouterr().err
    ws_url, rest_url = m.group(1), m.group(3)
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{ws_url}/ws/btcusdt@bookTicker") as ws,
    ):
        received = await messages(ws, 0.6)
    texts = [m.data for m in received if m.type is aiohttp.WSMsgType.TEXT]
    assert any('"e":"serverShutdown"' in t for t in texts)
    assert received[-1].type is aiohttp.WSMsgType.CLOSE
    started = time.monotonic()
    assert await task == 0
    assert time.monotonic() - started < 2.0
    assert "fault" in capsys.readouterr().err
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as http:
            await http.get(f"{rest_url}/api/v3/ping")


def test_main_reports_a_bad_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--port", "0", "--rate", "-1"]) == 2
    assert "rate must be >= 0" in capsys.readouterr().err


def test_main_refuses_faults_naming_unlisted_symbols(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--port", "0", "--symbols", "BTCUSDT", "--duration", "5"]
    assert main([*argv, "--fault", "resetids@1:BTCUSDT", "jumpids@2:ETHUSDT:5"]) == 2
    err = capsys.readouterr().err
    assert "faults name symbols not listed: jumpids@2:ETHUSDT:5" in err, err
    assert "Binance simulator" not in err  # refused before serving


async def _run_until(sig: signal.Signals) -> int:
    """Run the console script, check it serves, send it `sig`: its exit status."""
    assert SCRIPT.exists(), SCRIPT
    proc = await asyncio.create_subprocess_exec(
        str(SCRIPT), "simulate", "binance", "--port", "0", "--rate", "5",
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        line = (await asyncio.wait_for(proc.stderr.readline(), 20)).decode()
        m = URLS.search(line)
        assert m, line
        assert m.group(2) == m.group(4) != "0"  # one ephemeral port for both
        async with aiohttp.ClientSession() as http, http.get(f"{m.group(3)}/api/v3/ping") as r:
            assert r.status == 200
        proc.send_signal(sig)
        return await asyncio.wait_for(proc.wait(), 5)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_the_console_script_stops_cleanly_on_sigint_and_sigterm() -> None:
    codes = await asyncio.gather(_run_until(signal.SIGTERM), _run_until(signal.SIGINT))
    assert codes == [0, 0]
