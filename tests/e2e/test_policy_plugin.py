"""A policy plugin supplies its own state machines: the feed drives them through the
`BackoffPolicy` / `BreakerPolicy` protocols, not the core's classes.

`patient` (written here on the public API alone) retries every 0.1 s for ever and never opens
its breaker: against an exchange that refuses upgrades for a while, the feed follows it — the
core's exponential policy would have opened the breaker after 3 failures (FAST settings)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from typing import Any

from foxtrot_stream import BreakerState, PolicySpec, Transition, hookimpl
from foxtrot_stream.config.settings import load
from foxtrot_stream.contract.plugins import GROUP, Origin, PluginHost, discover_entry_points
from foxtrot_stream.runtime.feed import Feed
from foxtrot_stream.testing.settings import FAST_SETTINGS
from foxtrot_stream_binance.simulator import Simulator, SimulatorConfig

DELAY = 0.1


class SteadyBackoff:
    """The same delay every time; never gives up."""

    def __init__(self) -> None:
        self._attempts = 0

    @property
    def attempts(self) -> int:
        return self._attempts

    @property
    def max_attempts(self) -> int:
        return 1 << 30

    def next_delay(self) -> float | None:
        self._attempts += 1
        return DELAY

    def reset(self) -> None:
        self._attempts = 0


class NeverOpen:
    """A breaker that counts failures and never opens (the backoff alone paces retries)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.failures = 0
        self.most = 0
        self.since = clock()

    @property
    def state(self) -> BreakerState:
        return BreakerState.CLOSED

    @property
    def consecutive_failures(self) -> int:
        return self.failures

    @property
    def failure_threshold(self) -> int:
        return 1 << 30

    def time_in_state(self) -> float:
        return self.clock() - self.since

    def remaining_open(self) -> float:
        return 0.0

    def poll(self) -> Transition | None:
        return None

    def try_acquire_probe(self) -> bool:
        return False

    def record_success(self) -> Transition | None:
        self.failures = 0
        return None

    def record_failure(self) -> Transition | None:
        self.failures += 1
        self.most = max(self.most, self.failures)
        return None

    def exhaust(self, reason: str = "") -> Transition | None:
        return None

    def reset(self) -> Transition | None:
        return None

    def drain_transitions(self) -> list[Transition]:
        return []


class PatientPolicy:
    made: list[Any] = []

    @hookimpl
    def register_policies(self) -> list[PolicySpec]:
        def breaker(settings: Any, clock: Callable[[], float]) -> NeverOpen:
            made = NeverOpen(clock)
            self.made.append(made)
            return made

        return [PolicySpec("patient", lambda settings: SteadyBackoff(), breaker, None, "test")]


async def test_the_feed_drives_a_plugins_own_backoff_and_breaker() -> None:
    eps = [ep for ep in discover_entry_points(GROUP)]
    host = PluginHost.discover(eps)
    policy = PatientPolicy()
    host.register(policy, Origin("patient", "tests", "tests", "0"))
    async with Simulator(SimulatorConfig(symbols=("BTCUSDT",), rate=20.0)) as sim:
        values = FAST_SETTINGS | sim.settings() | {"websocket.policy": "patient"}
        feed = Feed(host, load(text=json.dumps(values), schema=host.schema()).settings, "binance")
        await feed.start(["BTCUSDT"])
        try:
            deadline = time.monotonic() + 5
            while feed.describe_symbol("BTCUSDT")[0] != "websocket":
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            before = sim.stats.connection_attempts
            sim.refuse_upgrades(1.0)
            sim.drop_all()
            await asyncio.sleep(1.6)
            attempts = sim.stats.attempt_times[before:]
            # retried at the plugin's steady pace, through more failures than the core's
            # breaker would take (3), and never OPEN
            assert len(attempts) >= 6
            gaps = [b - a for a, b in itertools.pairwise(attempts)]
            assert all(gap >= DELAY * 0.9 for gap in gaps), gaps
            assert feed.breaker_states() == {1: BreakerState.CLOSED}
            assert max(b.most for b in policy.made) > 3  # more than the core's breaker takes
            deadline = time.monotonic() + 5
            while feed.describe_symbol("BTCUSDT")[0] != "websocket":
                assert time.monotonic() < deadline, feed.status()["symbols"]["BTCUSDT"]
                await asyncio.sleep(0.02)
        finally:
            await feed.stop()
