"""docs/plugins.md works as written: every code block of the tutorial is executed.

The blocks are taken in document order. A ```python or ```toml block whose first line is a
comment naming a file (`# kestrel/src/foxtrot_kestrel/adapter.py`) is written to that file
(blocks naming the same file are appended, after one blank line, or two before top-level
code); a block whose first line says `# reference only` is a list of signatures and is only
compiled; any other ```python block is a standalone snippet that must run (its imports
included) and, if it implements hooks, register without a problem. The plugin's wheel is then
built from its pyproject.toml and installed (unpacked onto the path of the subprocesses); the
project is linted as a reader's ruff would, the plugin discovered, tested with the kit by a
pytest run of the tutorial's own test file, and streamed from with the tutorial's commands
(its `vt_setting.json`, on a free port).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from foxtrot_stream.testing.kit import ConformanceSuite

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "plugins.md"
BIN = Path(sys.executable).parent
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
FILE = re.compile(r"# (kestrel/\S+)$")
REFERENCE = "# reference only"
PORT = "9555"  # the port the tutorial's commands and vt_setting.json use


def blocks() -> list[tuple[str, str]]:
    return BLOCK.findall(DOC.read_text(encoding="utf-8"))


@attrs.frozen
class Tutorial:
    files: dict[str, str]
    references: list[str]
    snippets: list[str]
    json: list[str]
    sh: list[str]


def parse() -> Tutorial:
    files: dict[str, str] = {}
    references, snippets, json_blocks, sh = [], [], [], []
    for lang, body in blocks():
        first, _, rest = body.partition("\n")
        named = FILE.match(first)
        if lang in ("python", "toml") and named:
            so_far = files.get(named.group(1))
            gap = "\n" if rest.startswith(" ") else "\n\n"  # after a method, after a class
            files[named.group(1)] = rest if so_far is None else so_far + gap + rest
        elif lang == "python" and first.startswith(REFERENCE):
            references.append(body)
        elif lang == "python":
            snippets.append(body)
        elif lang == "json":
            json_blocks.append(body)
        elif lang == "sh":
            sh += [line for line in body.splitlines() if line.strip()]
    return Tutorial(files, references, snippets, json_blocks, sh)


TUTORIAL = parse()


@attrs.frozen
class Installed:
    project: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The tutorial's files written under a temporary directory, its wheel built (by uv,
    offline: hatchling comes from uv's cache) and installed for subprocesses: a pure wheel
    unpacked into a directory on the path is an installed distribution, entry points and all."""
    base = tmp_path_factory.mktemp("tutorial")
    for name, text in TUTORIAL.files.items():
        path = base / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    project = base / "kestrel"
    built = subprocess.run(
        ["uv", "build", "--wheel", "--offline", "-q", "-o", str(base / "dist")],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, f"uv build --offline: {built.stderr[-3000:]}"
    (wheel,) = (base / "dist").glob("*.whl")
    site = base / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    env = {k: v for k, v in os.environ.items() if k != "FOXTROT_SETTINGS"}
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return Installed(project, env)


def _python(code: str, env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_tutorial_builds_a_whole_plugin() -> None:
    assert set(TUTORIAL.files) == {
        "kestrel/pyproject.toml",
        "kestrel/src/foxtrot_kestrel/__init__.py",
        "kestrel/src/foxtrot_kestrel/fake.py",
        "kestrel/src/foxtrot_kestrel/settings.py",
        "kestrel/src/foxtrot_kestrel/adapter.py",
        "kestrel/src/foxtrot_kestrel/plugin.py",
        "kestrel/tests/test_conformance.py",
    }
    assert len(TUTORIAL.references) == 2 and TUTORIAL.snippets and TUTORIAL.json
    hooks = {h for s in TUTORIAL.snippets for h in re.findall(r"@hookimpl.*\ndef (\w+)", s)}
    assert {"on_failure", "on_state_change", "on_message"} <= hooks


def test_the_plugin_imports_only_the_public_api() -> None:
    for name, text in TUTORIAL.files.items():
        if name.startswith("kestrel/src/"):
            used = set(re.findall(r"^\s*(?:from|import) (foxtrot_stream\S*)", text, re.M))
            assert used <= {"foxtrot_stream"}, (name, used)


def test_every_python_block_compiles_and_every_snippet_runs(installed: Installed) -> None:
    for name, text in TUTORIAL.files.items():
        if name.endswith(".py"):
            compile(text, name, "exec")
    for block in TUTORIAL.references:
        # a signature listing: each `def …` line given a body
        compile(re.sub(r"^(def .*)$", r"\1: ...", block, flags=re.M), "reference", "exec")
    snippets = installed.project.parent / "snippets"  # beside the project, not in it
    snippets.mkdir(exist_ok=True)
    for n, snippet in enumerate(TUTORIAL.snippets):
        # run as a module; one with hook implementations must register without a problem
        (snippets / f"snippet_{n}.py").write_text(snippet, encoding="utf-8")
        out = _python(
            "from foxtrot_stream.contract.plugins import Origin, PluginHost\n"
            f"import snippet_{n} as snippet\n"
            "host = PluginHost.discover()\n"
            "loaded = host.register(snippet, Origin('snippet', 'snippet', 'snippet', '0'))\n"
            "print(host.problems or sorted(loaded.hooks))\n",
            installed.env,
            snippets,
        )
        if "@hookimpl" in snippet:
            hooks = re.findall(r"@hookimpl.*\ndef (\w+)", snippet)
            assert out.strip() == str(sorted(hooks)), out


def test_the_plugin_is_as_clean_as_the_projects_own_code(
    installed: Installed, tmp_path: Path
) -> None:
    """What a reader's ruff and mypy say of the written project: this project's rules (ruff's
    selection, `mypy --strict`), the reader's import sections (foxtrot_stream third-party,
    foxtrot_kestrel first-party)."""
    if not (BIN / "ruff").exists() or not (BIN / "mypy").exists():
        pytest.skip("ruff and mypy come with the dev group")
    options = ["--isolated", "--no-cache", "--line-length", "100", "--target-version", "py311"]
    rules = ["--select", "E,F,W,I,B,UP,SIM,RUF,ASYNC"]
    mypy = ["--strict", "--explicit-package-bases", "--cache-dir", str(tmp_path), "src", "tests"]
    for command in (
        [BIN / "ruff", "check", *rules, *options, "."],
        [BIN / "ruff", "format", "--check", *options, "."],
        [BIN / "mypy", *mypy],
    ):
        done = subprocess.run(
            [str(c) for c in command],
            cwd=installed.project,
            env={**installed.env, "MYPYPATH": "src"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout[-3000:]


def test_the_plugin_is_discovered(installed: Installed) -> None:
    out = _python(
        "import json\n"
        "from foxtrot_stream.contract.plugins import PluginHost\n"
        "host = PluginHost.discover()\n"
        "spec = host.adapters['kestrel']\n"
        "print(json.dumps({'problems': [str(p) for p in host.problems],\n"
        "                  'simulator': spec.simulator is not None}))\n",
        installed.env,
        installed.project,
    )
    found = json.loads(out)
    assert found == {"problems": [], "simulator": True}, found


def test_the_conformance_suite_passes(installed: Installed) -> None:
    """`pytest tests/` in the tutorial's project, as its reader runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/"],
        cwd=installed.project,
        env=installed.env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    suite = [n for n in dir(ConformanceSuite) if n.startswith("test_")]
    assert f"{len(suite)} passed" in done.stdout, done.stdout[-2000:]


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _command(line: str, port: str) -> list[str]:
    command = line.partition("  #")[0].strip().replace(PORT, port)
    assert command.startswith("uv run foxtrot-stream "), line
    return shlex.split(command.removeprefix("uv run "))


@pytest.fixture
def fake_on_a_port(installed: Installed, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The tutorial's `simulate` command running, and a directory with its vt_setting.json."""
    port = _free_port()
    settings = next(b for b in TUTORIAL.json if '"kestrel.ws_url"' in b)
    (tmp_path / "vt_setting.json").write_text(settings.replace(PORT, port), encoding="utf-8")
    simulate = next(line for line in TUTORIAL.sh if " simulate kestrel" in line)
    proc = subprocess.Popen(
        _command(simulate, port),
        cwd=tmp_path,
        env=installed.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", int(port)), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "the fake never listened"
            time.sleep(0.1)
    try:
        yield port, tmp_path
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise AssertionError("the fake did not stop on SIGINT") from None
        assert proc.returncode == 0, err[-2000:]


def test_the_run_commands_stream_from_the_fake(
    installed: Installed, fake_on_a_port: tuple[str, Path]
) -> None:
    port, cwd = fake_on_a_port
    listed = subprocess.run(
        _command(next(line for line in TUTORIAL.sh if line.endswith(" plugins")), port),
        cwd=cwd, env=installed.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "kestrel  (foxtrot-stream-kestrel 0.1.0, foxtrot_kestrel.plugin)" in listed.stdout
    assert "adapter   kestrel (KestrelAdapter)" in listed.stdout, listed.stdout
    run = next(line for line in TUTORIAL.sh if " run --adapter kestrel" in line)
    done = subprocess.run(
        _command(run, port), cwd=cwd, env=installed.env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    ticks = [json.loads(line) for line in done.stdout.splitlines()]
    streamed = {t["symbol"] for t in ticks if t["transport"] == "websocket"}
    assert streamed == {"BTCUSD", "ETHUSD"}, done.stderr[-2000:]
