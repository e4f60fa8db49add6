"""End-to-end fixtures: the real feed against the bundled simulator on 127.0.0.1.

Timings are scaled down through the settings (heartbeat 0.3 s, backoff 0.05–0.4 s, breaker 3
failures / 1 s, polling every 0.2 s) so each scenario runs in a few seconds.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from foxtrot_stream.config.settings import Settings, load
from foxtrot_stream.contract.model import Tick, TransportKind
from foxtrot_stream.contract.plugins import PluginHost
from foxtrot_stream.runtime.feed import Feed, liveness_bound
from foxtrot_stream.testing import FAST_SETTINGS
from foxtrot_stream_binance.simulator import Simulator, SimulatorConfig

FAST: dict[str, Any] = FAST_SETTINGS
SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT")


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    config = SimulatorConfig(
        symbols=SYMBOLS, rate=20.0, ping_interval=0.5, pong_timeout=2.0, seed=7
    )
    async with Simulator(config) as s:
        yield s


def settings_for(host: PluginHost, sim: Simulator, **overrides: Any) -> Settings:
    values = FAST | sim.settings() | {k.replace("__", "."): v for k, v in overrides.items()}
    return load(text=json.dumps(values), schema=host.schema()).settings


class Recorder:
    """A consumer that keeps every tick with its arrival time (time.time)."""

    def __init__(self) -> None:
        self.ticks: list[tuple[float, Tick]] = []

    def __call__(self, tick: Tick) -> None:
        self.ticks.append((time.time(), tick))

    def of(self, symbol: str, transport: TransportKind | None = None) -> list[Tick]:
        return [
            t
            for _, t in self.ticks
            if t.symbol == symbol and (transport is None or t.transport is transport)
        ]

    def transports(self, symbol: str) -> list[str]:
        """The transports that delivered `symbol`, in order, runs collapsed."""
        out: list[str] = []
        for t in self.of(symbol):
            if not out or out[-1] != t.transport.value:
                out.append(t.transport.value)
        return out

    def first_after(self, when: float, transport: TransportKind) -> float | None:
        return next((at for at, t in self.ticks if at >= when and t.transport is transport), None)

    def max_gap(self, symbol: str, since: float | None = None, until: float | None = None) -> float:
        """The longest time without a delivered tick of `symbol` in [since, until], counted
        from its first tick at the earliest; until now if `until` is None."""
        arrivals = [at for at, t in self.ticks if t.symbol == symbol]
        start = arrivals[0] if since is None else max(since, arrivals[0])
        end = time.time() if until is None else until
        points = [start, *(at for at in arrivals if start < at < end), end]
        return max(b - a for a, b in itertools.pairwise(points))

    def assert_no_duplicate_or_out_of_order(self) -> None:
        last: dict[str, tuple[int, int]] = {}
        last_quote: dict[str, tuple[float, ...]] = {}
        for _, t in self.ticks:
            if t.seq is not None:
                key = (t.seq, t.trade_id if t.trade_id is not None else -1)
                assert key > last.get(t.symbol, (-1, -1)), (
                    f"{t.symbol}: {key} after {last[t.symbol]}"
                )
                last[t.symbol] = key
            else:
                quote = (t.bid, t.bid_qty, t.ask, t.ask_qty)
                assert quote != last_quote.get(t.symbol), f"{t.symbol}: polled repeat {quote}"
            last_quote[t.symbol] = (t.bid, t.bid_qty, t.ask, t.ask_qty)


def proven(feed: Feed, symbols: tuple[str, ...] = SYMBOLS) -> Callable[[], bool]:
    """The WebSocket has taken every one of `symbols` over from polling (coverage)."""
    return lambda: all(feed.describe_symbol(s)[0] == "websocket" for s in symbols)


#: The liveness bound B at the FAST timings (heartbeat 0.3 s, polling every 0.2 s) with REST
#: answering within 50 ms on loopback, plus slack for a busy two-core CI machine.
MAX_GAP = liveness_bound(0.3, 0.2, 0.05) + 0.3


async def wait_for(predicate: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.02)


class Logs:
    """The guide's log lines as they appear: `<logger name>: <message>`."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog

    def lines(self) -> list[str]:
        return [f"{r.name}: {r.getMessage()}" for r in self.caplog.records]

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines())

    def when(self, text: str) -> float:
        return next(r.created for r in self.caplog.records if text in f"{r.name}: {r.getMessage()}")


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Logs:
    caplog.set_level(logging.INFO)
    return Logs(caplog)


@pytest.fixture
async def make_feed(host: PluginHost) -> AsyncIterator[Callable[..., Any]]:
    feeds: list[Feed] = []

    async def make(settings: Settings, symbols: tuple[str, ...] = SYMBOLS) -> tuple[Feed, Recorder]:
        feed = Feed(host, settings, "binance")
        recorder = Recorder()
        feed.add_consumer(recorder)
        feeds.append(feed)
        await feed.start(symbols)
        return feed, recorder

    yield make
    for feed in feeds:
        await feed.stop()
    leftover = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    names = sorted(t.get_name() for t in leftover)
    assert not [n for n in names if n.startswith("binance-")], f"leaked feed tasks: {names}"
