"""Instruction counts of `full_path.py`'s receivers, for callgrind (repeatable where timings
are not).

The sender runs in its own process, not under valgrind; the receiver runs under callgrind
twice, for two burst sizes, and the difference of the two totals divided by the difference of
frames is the receiver's cost per frame, start-up excluded::

    uv run python benchmarks/full_path_count.py serve &          # prints its port
    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p \\
        .venv/bin/python benchmarks/full_path_count.py recv PORT full 20000
    # … again with 60000, and with `orjson` for the bare aiohttp + orjson + Tick loop
    callgrind_annotate /tmp/cg.<pid> | head   # "PROGRAM TOTALS"

`uv run python benchmarks/full_path_count.py compare PORT` does all of that (valgrind on PATH)
and prints instructions per frame and the ratio full / bare orjson + Tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import re
import subprocess
import sys
import tempfile
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import full_path as fp

SIZES = (20_000, 60_000)


class _Jobs:
    """The sender's job queue: a burst of as many frames as the last `recv` asked for."""

    def __init__(self, path: str) -> None:
        self.path = path

    def get(self, timeout: float | None = None) -> tuple[str, int]:
        with open(self.path) as f:
            return ("burst", int(f.read()))


class _Results:
    def put(self, item: Any) -> None:
        pass


def _n_file(port: int) -> str:
    return os.path.join(tempfile.gettempdir(), f"full_path_count.{port}")


def serve() -> None:
    syms = fp.symbols()
    frames, _ = fp.payloads(max(SIZES) + 1, syms)
    wire = [fp.ws_frame(f) for f in frames]
    offsets = [0]
    for w in wire:
        offsets.append(offsets[-1] + len(w))
    blob = b"".join(wire)

    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: sender.handle(r, w), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        sender.jobs = _Jobs(_n_file(port))
        print(port, flush=True)
        async with server:
            await server.serve_forever()

    sender = fp.Sender(blob, offsets, syms, None, _Results())
    asyncio.run(main())


def recv(port: int, which: str, n: int) -> None:
    with open(_n_file(port), "w") as f:
        f.write(str(n))
    syms = fp.symbols()

    async def main() -> None:
        meter = fp.Meter(n, False)
        if which == "full":
            await fp.full_path(port, meter, syms)
        else:
            decode = {
                "orjson": fp.decode_orjson_tick,
                "msgspec": fp.decode_msgspec_tick,
                "receive": fp.decode_nothing,
            }[which]
            await fp.bare_loop(port, meter, decode)

    asyncio.run(main())


def callgrind_total(args: list[str], out: str) -> int:
    """Instructions executed by `python args...` under callgrind (its output left at out.PID)."""
    for old in glob.glob(out + ".*"):
        os.remove(old)
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p", sys.executable, *args],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},  # dict layouts, hence counts, repeat
    )
    (path,) = glob.glob(out + ".*")
    with open(path) as f:
        text = f.read()
    match = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
    assert match is not None
    return int(match.group(1))


def _count(port: int, which: str, n: int, out: str) -> int:
    return callgrind_total([os.path.abspath(__file__), "recv", str(port), which, str(n)], out)


def compare(port: int, receivers: list[str]) -> None:
    out = os.path.join(tempfile.gettempdir(), "full_path_count.cg")
    per: dict[str, float] = {}
    for which in receivers:
        small, large = (_count(port, which, n, out) for n in SIZES)
        per[which] = (large - small) / (SIZES[1] - SIZES[0])
        print(f"  {which:<8} {per[which]:9,.0f} instructions per frame", flush=True)
    for bare in ("orjson", "msgspec", "receive"):
        if "full" in per and bare in per:
            print(f"  bare {bare} / full = {per[bare] / per['full']:.3f}")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "serve":
        serve()
    elif cmd == "recv":
        recv(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
    else:
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends a long count, no traceback
            compare(int(sys.argv[2]), sys.argv[3:] or ["full", "orjson"])
