"""foxtrot-stream against other Python Binance clients, on the same loopback stream.

Every runner (`run_<name>.py`) receives the same burst of bookTicker events from one loopback
sender (`sender.py`, its own process, pinned to core 0) and counts the ticks its client hands
to the user callback; the runners run one at a time, pinned to core 1. foxtrot-stream and the
bare aiohttp + orjson baseline run in the project env; each peer runs in its own throwaway
venv under `benchmarks/peers/.envs/` (gitignored), made with `uv venv` + `uv pip install` of
the pinned version below on the first run and reused after. Peers are never dependencies of
the project.

Rounds are interleaved (round r runs every runner once, the order rotated by r); the table
shows the median ticks per CPU-second of each runner and foxtrot-stream's ratio to it.

Run: `uv run python benchmarks/peers/run.py` (about 3 minutes once the envs exist; the first
run also installs them). `--only foxtrot,ccxt`, `--rounds 5`, `--frames 100000`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import json
import multiprocessing as mp
import os
import platform
import shutil
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENVS = HERE / ".envs"
SENDER_CORE, RECEIVER_CORE = 0, 1
PYTHON = "3.11"


@dataclass(frozen=True)
class Runner:
    name: str
    script: str
    #: pip requirements of its own env; empty: the project env (this interpreter)
    requirements: tuple[str, ...] = ()
    notes: str = ""
    #: more arguments for its script
    extra: tuple[str, ...] = ()


RUNNERS = [
    Runner(
        "foxtrot",
        "run_foxtrot.py",
        notes="`Feed` + consumer callback: typed `Tick` (msgspec), sequencer, metrics",
    ),
    Runner(
        "baseline",
        "run_baseline.py",
        notes="bare aiohttp `ws.receive()` + `orjson.loads` + slotted attrs tick, no checks",
    ),
    Runner(
        "baseline-json",
        "run_baseline.py",
        notes="the same with the standard library's `json.loads`",
        extra=("--decoder", "json"),
    ),
]
RUNNERS += [
    Runner(
        "cryptofeed",
        "run_cryptofeed.py",
        ("cryptofeed==2.4.1",),
        notes="normalized `Ticker` (Decimal prices) to an async callback; uvloop (its default)",
    ),
    Runner(
        "python-binance",
        "run_python_binance.py",
        ("python-binance==1.0.37", "orjson==3.13.0"),
        notes="async `BinanceSocketManager` multiplex socket, dict per message (orjson, opt-in)",
    ),
]
RUNNERS += [
    Runner(
        "ccxt",
        "run_ccxt.py",
        ("ccxt==4.5.90",),
        notes="ccxt.pro `watch_bids_asks` loop, unified ticker dicts; conflates (see README)",
    ),
]
RUNNERS += [
    Runner(
        "unicorn",
        "run_unicorn.py",
        ("unicorn-binance-websocket-api==2.16.1",),
        notes="`process_stream_data` callback in its stream thread, orjson dict per message",
    ),
]
RUNNERS += [
    Runner(
        "nautilus",
        "run_nautilus.py",
        ("nautilus_trader==1.221.0",),
        notes="`TradingNode` + Binance spot data client, `Actor.on_quote_tick` (`QuoteTick`)",
    ),
]
BY_NAME = {r.name: r for r in RUNNERS}


def ensure_env(runner: Runner) -> Path:
    """The runner's interpreter: this one, or its venv (made or remade when its pins change)."""
    if not runner.requirements:
        return Path(sys.executable)
    env = ENVS / runner.name
    python = env / "bin" / "python"
    stamp = env / "requirements.txt"
    wanted = "\n".join(runner.requirements) + "\n"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    uv = shutil.which("uv")
    if uv is None:
        raise SystemExit("uv is needed to make the peers' envs (https://docs.astral.sh/uv/)")
    print(f"making {env.relative_to(HERE.parent.parent)}: {' '.join(runner.requirements)}")
    shutil.rmtree(env, ignore_errors=True)
    ENVS.mkdir(exist_ok=True)
    # --no-config: not the project's [tool.uv] settings (its override-dependencies drop pandas,
    # which nautilus_trader imports); the peers' envs owe nothing to the project's.
    uv_pip = [uv, "pip", "--no-config"]
    run = functools.partial(subprocess.run, check=True, cwd=ENVS)
    run([uv, "venv", "--no-config", "--quiet", "--python", PYTHON, str(env)])
    run([*uv_pip, "install", "--quiet", "--python", str(python), *runner.requirements])
    run([*uv_pip, "check", "--quiet", "--python", str(python)])
    stamp.write_text(wanted)
    return python


def run_once(
    python: Path, runner: Runner, port: int, args: argparse.Namespace
) -> dict[str, object]:
    cmd = [
        str(python),
        str(HERE / runner.script),
        "--port",
        str(port),
        "--frames",
        str(args.frames),
        "--symbols",
        str(args.symbols),
        "--timeout",
        str(args.timeout),
        *runner.extra,
    ]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=args.timeout + 30, cwd=HERE
        )
    except subprocess.TimeoutExpired:
        return {"error": "no answer (killed)"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {proc.returncode}: {tail[:200]}"}
    result: dict[str, object] = json.loads(lines[-1])
    if proc.returncode and "error" not in result:
        result["error"] = f"exit {proc.returncode}"
    return result


def start_sender(args: argparse.Namespace) -> tuple[mp.Process, int]:
    sys.path.insert(0, str(HERE))
    from sender import sender_main  # the project env's: it imports benchmarks/full_path.py

    ctx = mp.get_context("fork")
    ready, ready_child = ctx.Pipe(duplex=False)
    core = SENDER_CORE if args.pinned else None
    proc = ctx.Process(
        target=sender_main,
        args=(args.frames, args.symbols, core, ready_child, args.verbose),
        daemon=True,
    )
    proc.start()
    if not ready.poll(60):
        raise SystemExit("the sender did not start")
    return proc, ready.recv()


def pinning() -> bool:
    return hasattr(os, "sched_setaffinity") and {SENDER_CORE, RECEIVER_CORE} <= set(
        os.sched_getaffinity(0)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=60.0, help="per run, seconds")
    parser.add_argument(
        "--only", help=f"comma-separated runners, of: {', '.join(r.name for r in RUNNERS)}"
    )
    parser.add_argument("--verbose", action="store_true", help="the sender logs requests")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else [r.name for r in RUNNERS]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        parser.error(f"unknown runner(s) {', '.join(unknown)}")
    selected = [BY_NAME[n] for n in names]
    pythons: dict[str, Path] = {}
    for r in selected:
        try:
            pythons[r.name] = ensure_env(r)
        except subprocess.CalledProcessError as exc:  # e.g. no wheel for this platform
            print(f"skipping {r.name}: its env could not be made ({exc})")
    selected = [r for r in selected if r.name in pythons]
    args.pinned = pinning()

    sender, port = start_sender(args)
    try:
        if args.pinned:
            os.sched_setaffinity(0, {RECEIVER_CORE})  # the runners inherit it
        results: dict[str, list[dict[str, object]]] = {r.name: [] for r in selected}
        for rnd in range(args.rounds):
            shift = rnd % len(selected)
            for r in selected[shift:] + selected[:shift]:
                res = run_once(pythons[r.name], r, port, args)
                results[r.name].append(res)
                if "error" in res:
                    print(f"  round {rnd + 1} {r.name:<15} ERROR {res['error']}", flush=True)
                else:
                    print(
                        f"  round {rnd + 1} {r.name:<15} {res['ticks_per_cpu_s']:>9,} ticks/CPU-s"
                        f"  ({res['cpu_s']:.2f} CPU-s, {res['wall_s']:.2f} s wall, "
                        f"start {res['startup_s']} s"
                        + (f", {res['delivered']:,} handed out" if "delivered" in res else "")
                        + ")",
                        flush=True,
                    )
    finally:
        sender.terminate()
        sender.join(5)
    report(args, selected, results)


def report(
    args: argparse.Namespace, selected: list[Runner], results: dict[str, list[dict[str, object]]]
) -> None:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print()
    print(
        f"{datetime.date.today()}, Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"load {load}; {args.frames:,} bookTicker frames, {args.symbols} symbols, median of "
        f"{args.rounds} interleaved rounds; "
        + ("sender on core 0, runners on core 1" if args.pinned else "unpinned")
    )
    print()
    medians: dict[str, float] = {}
    for name, runs in results.items():
        good = [float(x["ticks_per_cpu_s"]) for x in runs if "error" not in x]  # type: ignore[arg-type]
        if good:
            medians[name] = statistics.median(good)
    fox = medians.get("foxtrot")
    print("| runner | version | API | ticks/CPU-s | foxtrot / runner | notes |")
    print("|---|---|---|---:|---:|---|")
    for r in selected:
        runs = results[r.name]
        version = api = ""
        for x in runs:
            version, api = str(x.get("version", "")), str(x.get("api", ""))
            if version:
                break
        errors = [str(x["error"]) for x in runs if "error" in x]
        notes = r.notes + (f" ({len(errors)} failed: {errors[0]})" if errors else "")
        if r.name in medians:
            rate = f"{medians[r.name] / 1000:,.0f}k"
            ratio = f"{fox / medians[r.name]:.2f}x" if fox else "n/a"
        else:
            rate = ratio = "failed"
        print(f"| {r.name} | {version} | {api} | {rate} | {ratio} | {notes} |")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
