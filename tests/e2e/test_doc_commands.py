"""Every shell command in README.md and docs/*.md works as written.

Each command of a ```sh block is run: `uv run foxtrot-stream …` with this environment's
`foxtrot-stream`, in a directory whose `vt_setting.json` points at the bundled simulator (as the
README says to do for a local exchange); commands that stream until stopped get a few seconds,
then SIGINT, and must exit 0. `pip install` lines are run into a fresh virtual environment.
A command may be left out only with a reason in its comment: `# not run by the tests: …`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from foxtrot_stream.testing.settings import FAST_SETTINGS
from foxtrot_stream_binance.simulator import SimulatorConfig

sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))
from engine_helpers import SimulatorThread

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BIN = Path(sys.executable).parent
BLOCK = re.compile(r"```(?:sh|bash|shell)\n(.*?)```", re.S)
SKIP = "# not run by the tests: "
#: How long a command that streams until stopped runs before its SIGINT.
RUN_FOR = 2.5


def commands() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for block in BLOCK.findall(doc.read_text(encoding="utf-8")):
            for line in block.replace("\\\n", " ").splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    found.append((f"{doc.relative_to(ROOT)}: {line.strip()[:60]}", line.strip()))
    return found


COMMANDS = commands()


def split_comment(line: str) -> tuple[str, str]:
    command, _, comment = line.partition("  #")
    return command.strip(), f"#{comment}".strip() if comment else ""


def test_the_docs_have_commands() -> None:
    assert len(COMMANDS) >= 15


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorThread]:
    sim = SimulatorThread(
        SimulatorConfig(symbols=("BTCUSDT", "ETHUSDT", "BNBUSDT"), rate=10.0, seed=21)
    )
    yield sim
    sim.close()


@pytest.fixture
def workdir(tmp_path: Path, simulator: SimulatorThread) -> Path:
    settings = FAST_SETTINGS | simulator.sim.settings()
    settings["websocket.binance.symbols"] = ["BTCUSDT", "ETHUSDT"]
    (tmp_path / "vt_setting.json").write_text(json.dumps(settings, indent=2), encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(("where", "line"), COMMANDS, ids=[w for w, _ in COMMANDS])
def test_documented_command_works(
    where: str, line: str, workdir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    command, comment = split_comment(line)
    if comment.startswith(SKIP):
        assert len(comment) > len(SKIP) + 10, f"{where}: say why it is not run"
        pytest.skip(comment)
    if command == "uv run pytest":
        pytest.skip("the test suite itself (CI runs exactly this)")
    if command.startswith("pip install "):
        _pip_install(command, tmp_path_factory.mktemp("venv"))
        return
    assert command.startswith("uv run foxtrot-stream "), f"{where}: unknown kind of command"
    _run(command.removeprefix("uv run "), workdir, where)


def _run(command: str, cwd: Path, where: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "FOXTROT_SETTINGS"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.Popen(
        ["bash", "-c", f"exec {command}"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    served = _serve_port(command)
    deadline = time.monotonic() + RUN_FOR
    status_seen = served is None
    while proc.poll() is None and time.monotonic() < deadline:
        if not status_seen:
            status_seen = _answers(served)
        time.sleep(0.1)
    interrupted = proc.poll() is None
    if interrupted:
        proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"{where}: did not stop within 15 s of SIGINT") from None
    text = err.decode(errors="replace")
    assert proc.returncode == 0, f"{where}: exit {proc.returncode}\n{text[-2000:]}"
    assert "Traceback" not in text, text[-2000:]
    assert status_seen, f"{where}: its --serve address never answered /status"
    if " run " in f" {command} " and "--format jsonl" in command and ">" not in command:
        assert out.count(b"\n") > 0, f"{where}: streamed nothing"
    if "> ticks.jsonl" in command:
        assert (cwd / "ticks.jsonl").read_bytes().count(b"\n") > 0


def _serve_port(command: str) -> int | None:
    words = shlex.split(command)
    if "--serve" not in words:
        return None
    value = words[words.index("--serve") + 1]
    return int(value.rpartition(":")[2])


def _answers(port: int | None) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _pip_install(command: str, venv: Path) -> None:
    """The line as a user runs it from a clone of the repository, into a fresh environment
    (uv's pip, from its cache: the same resolution, faster)."""
    subprocess.run(["uv", "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    args = shlex.split(command)[2:]
    done = subprocess.run(
        ["uv", "pip", "install", "-q", "--python", str(python), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    listed = subprocess.run(
        [str(venv / "bin" / "foxtrot-stream"), "plugins"],
        cwd=venv,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert "adapter   binance" in listed.stdout and "http_fallback" in listed.stdout
