"""Helpers for the host tests: where the Foxtrot host is, skip-or-fail, an event recorder."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from foxtrot_stream.testing import FAST_SETTINGS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from engine_helpers import SimulatorThread

ROOT = Path(__file__).resolve().parents[2]
FOXTROT_HOST = Path(
    os.environ.get("FOXTROT_HOST_PATH") or ROOT / ".." / "shared" / "upstream" / "foxtrot"
).resolve()
REQUIRED = os.environ.get("FOXTROT_REQUIRE_HOSTS") == "1"
#: What the hosts' own modules import (the `foxtrot-host` dependency group).
HOST_IMPORTS = ("numpy", "talib", "loguru", "tzlocal")


def unavailable(reason: str) -> None:
    """Skip (a developer's machine without the host), or fail where the hosts are required."""
    if REQUIRED:
        pytest.fail(f"{reason} (FOXTROT_REQUIRE_HOSTS=1: the host tests must run)", pytrace=False)
    pytest.skip(reason)


def missing_imports() -> list[str]:
    return [name for name in HOST_IMPORTS if importlib.util.find_spec(name) is None]


class Events:
    """Every event of the types it is registered for, with its arrival time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[float, str, Any]] = []

    def __call__(self, event: Any) -> None:
        with self.lock:
            self.events.append((time.monotonic(), event.type, event.data))

    def of(self, event_type: str, since: float = 0.0) -> list[Any]:
        with self.lock:
            return [d for at, kind, d in self.events if kind == event_type and at >= since]

    def logs(self, since: float = 0.0) -> list[Any]:
        return self.of("eLog", since)

    def log_text(self) -> str:
        return "\n".join(log.msg for log in self.logs())


def host_setting_file(sim: SimulatorThread) -> dict[str, Any]:
    """A host's vt_setting.json: one of its own keys, and the guide's keys pointing at the
    simulator (strict JSON, as the hosts read it with json.load)."""
    return {"font.size": 12, **FAST_SETTINGS, **sim.sim.settings()}


def make_trader_folder(base: Path, sim: SimulatorThread) -> Path:
    folder = base / ".vntrader"
    folder.mkdir(parents=True)
    (folder / "vt_setting.json").write_text(
        json.dumps(host_setting_file(sim), indent=4), encoding="utf-8"
    )
    return base
