"""What every runner shares (standard library only: runners run in the peers' own envs).

A runner is `python run_<peer>.py --port P --frames N --symbols K`: it points its client at
the loopback sender on port P, subscribes to the bookTicker streams of the K symbols
`S00USDT`… (the sender's), counts the ticks its user callback receives, and prints one JSON line
when the N-th arrives: ticks counted after the first, user+sys CPU seconds of the whole
process (every thread) between the first and the last tick, wall seconds, ticks per CPU-second.
It then leaves with `os._exit`, without the client's own shutdown (not measured, and some are
slow). If the N-th tick does not come within `--timeout` seconds it prints what it got and
exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
from collections.abc import Callable
from typing import Any


def parse_args(**extra: dict[str, Any]) -> argparse.Namespace:
    """The runners' common arguments; `extra`: option name → `add_argument` keywords."""
    parser = argparse.ArgumentParser()
    for name, kwargs in extra.items():
        parser.add_argument(f"--{name}", **kwargs)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=120.0)
    return parser.parse_args()


def symbols(k: int) -> list[str]:
    return [f"S{i:02d}USDT" for i in range(k)]


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


#: `u` of the sender's first bookTicker (`benchmarks/full_path.py`'s `U0`); the n-th is U0 + n - 1
U0 = 400_900_000


class Meter:
    """`tick()` once per tick in the user callback; reports and exits at the `n`-th."""

    def __init__(self, n: int, timeout: float, version: str, api: str) -> None:
        self.n = n
        self.count = 0
        self.version = version
        self.api = api
        self.cpu0 = self.wall0 = 0.0
        self.started = time.perf_counter()
        self.lock = threading.Lock()
        timer = threading.Timer(timeout, self.timed_out)
        timer.daemon = True
        timer.start()
        self.tick: Callable[..., None] = self._tick
        self.delivered = 0
        self.u0 = 0

    def _tick(self, *_: object) -> None:
        self.count += 1
        if self.count == 1:
            self.cpu0, self.wall0 = cpu(), time.perf_counter()
        elif self.count >= self.n:
            self.report(0)

    def upto(self, u: int, delivered: int = 1) -> None:
        """For a client whose await API conflates (hands out the latest quote per symbol, not
        every update): the highest `u` it has handed out so far. The frames it processed are
        counted by `u` (all of them are parsed either way), the updates it handed out in
        `delivered`."""
        self.delivered += delivered
        if not self.count:
            self.cpu0, self.wall0 = cpu(), time.perf_counter()
            self.u0 = u
        self.count = u - self.u0 + 1
        if u >= U0 + self.n - 1:
            self.report(0)

    def report(self, code: int, error: str | None = None) -> None:
        cpu1, wall1 = cpu(), time.perf_counter()
        with self.lock:  # one report, whichever thread gets here first
            ticks = max(self.count - 1, 0)
            spent = cpu1 - self.cpu0 if self.count else 0.0
            out = {
                "ticks": ticks,
                "cpu_s": round(spent, 4),
                "wall_s": round(wall1 - self.wall0, 4) if self.count else 0.0,
                "ticks_per_cpu_s": round(ticks / spent) if spent > 0 else 0,
                "version": self.version,
                "api": self.api,
                "startup_s": round(self.wall0 - self.started, 2) if self.count else None,
            }
            if self.delivered:
                out["delivered"] = self.delivered
            if error:
                out["error"] = error
            sys.stdout.write(json.dumps(out) + "\n")
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def timed_out(self) -> None:
        self.report(1, f"timed out with {self.count} of {self.n} ticks")
