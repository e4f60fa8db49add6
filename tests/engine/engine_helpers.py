"""Helpers for the engine tests: the real simulator on its own thread, settings files, waits.

The engine owns its loop in its own thread, so the simulator cannot share a pytest-asyncio
loop with it: it runs on a loop of its own in a background thread, as a separate process
would, and faults are scripted through `SimulatorThread.call`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from foxtrot_stream.contract.model import Tick
from foxtrot_stream.testing import FAST_SETTINGS
from foxtrot_stream_binance.simulator import Simulator, SimulatorConfig

T = TypeVar("T")

FAST: dict[str, Any] = FAST_SETTINGS
SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT")


class SimulatorThread:
    """The bundled Binance simulator on 127.0.0.1, served by a loop in its own thread."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="test-simulator", daemon=True
        )
        self.thread.start()
        self.sim: Simulator = self.run(Simulator(config).start())

    def run(self, coro: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Call a simulator method on its loop (faults, rates)."""

        async def on_loop() -> T:
            return fn(*args)

        result: T = self.run(on_loop())
        return result

    def close(self) -> None:
        self.run(self.sim.stop())
        self.run(self.loop.shutdown_default_executor())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def write_settings(path: Path, sim: SimulatorThread, **extra: Any) -> Path:
    values = FAST | sim.sim.settings() | {k.replace("__", "."): v for k, v in extra.items()}
    path.write_text(json.dumps(values, indent=2), encoding="utf-8")
    return path


def wait_until(predicate: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        time.sleep(0.01)


class Collector:
    """A thread-safe consumer that keeps every tick with the thread that delivered it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ticks: list[Tick] = []
        self.threads: set[str] = set()

    def __call__(self, tick: Tick) -> None:
        with self.lock:
            self.ticks.append(tick)
            self.threads.add(threading.current_thread().name)

    def symbols(self) -> set[str]:
        with self.lock:
            return {t.symbol for t in self.ticks}

    def count(self, symbol: str | None = None) -> int:
        with self.lock:
            return sum(1 for t in self.ticks if symbol is None or t.symbol == symbol)


def open_fds() -> set[str]:
    """This process's open file descriptors with what they point at (Linux)."""
    fds = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the descriptor listdir used, closed by now
            fds.add(f"{fd}->{os.readlink(f'/proc/self/fd/{fd}')}")
    return fds
