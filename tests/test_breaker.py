"""The circuit breaker against a small model of DESIGN §5, with a fake clock (no sleeps)."""

from __future__ import annotations

import math

import attrs
import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from foxtrot_stream.policy.breaker import BreakerState, CircuitBreaker, Transition
from foxtrot_stream.testing import FakeClock

CLOSED, OPEN, HALF_OPEN, EXHAUSTED = (
    BreakerState.CLOSED,
    BreakerState.OPEN,
    BreakerState.HALF_OPEN,
    BreakerState.EXHAUSTED,
)


# --- examples ---------------------------------------------------------------------------------


def test_guide_defaults_walkthrough() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(5, 60.0, clock)
    for _ in range(4):
        assert breaker.record_failure() is None
        assert breaker.state is CLOSED
    opened = breaker.record_failure()
    assert opened == Transition(CLOSED, OPEN, 1000.0, "failure_threshold reached")
    assert breaker.remaining_open() == 60.0
    assert not breaker.try_acquire_probe()

    clock.advance(59.0)
    assert breaker.state is OPEN
    assert breaker.remaining_open() == 1.0
    assert breaker.time_in_state() == 59.0

    clock.advance(1.0)
    assert breaker.state is HALF_OPEN  # read lazily, nothing mutated yet
    assert breaker.remaining_open() == 0.0
    assert breaker.poll() == Transition(OPEN, HALF_OPEN, 1060.0, "recovery_timeout elapsed")
    assert breaker.poll() is None
    assert breaker.try_acquire_probe()
    assert not breaker.try_acquire_probe()

    clock.advance(5.0)
    reopened = breaker.record_failure()
    assert reopened == Transition(HALF_OPEN, OPEN, 1065.0, "probe failed")
    assert breaker.remaining_open() == 60.0  # the timer restarts at the failed probe
    assert breaker.consecutive_failures == 6

    clock.advance(60.0)
    assert breaker.try_acquire_probe()
    closed = breaker.record_success()
    assert closed == Transition(HALF_OPEN, CLOSED, 1125.0, "probe succeeded")
    assert breaker.consecutive_failures == 0
    assert breaker.remaining_open() == 0.0
    assert [t.new for t in breaker.drain_transitions()] == [
        OPEN,
        HALF_OPEN,
        OPEN,
        HALF_OPEN,
        CLOSED,
    ]
    assert breaker.drain_transitions() == []


def test_success_in_closed_resets_the_consecutive_count() -> None:
    breaker = CircuitBreaker(3, 10.0, FakeClock())
    for _ in range(10):
        breaker.record_failure()
        breaker.record_failure()
        assert breaker.record_success() is None
    assert breaker.state is CLOSED


def test_exhausted_only_leaves_by_reset() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(2, 1.0, clock)
    breaker.record_failure()
    breaker.record_failure()
    clock.advance(1.0)
    assert breaker.try_acquire_probe()
    breaker.record_failure()
    exhausted = breaker.exhaust()  # what the owner does when its backoff runs out
    assert exhausted == Transition(OPEN, EXHAUSTED, 1001.0, "max_attempts reached")
    clock.advance(1e6)
    for act in (breaker.record_success, breaker.record_failure, breaker.poll, breaker.exhaust):
        assert act() is None
        assert breaker.state is EXHAUSTED
    assert not breaker.try_acquire_probe()
    assert breaker.reset() == Transition(EXHAUSTED, CLOSED, clock.now, "manual reset")
    assert breaker.consecutive_failures == 0 and breaker.state is CLOSED


def test_the_breaker_reports_every_change_once_even_one_another_call_materialised() -> None:
    """OPEN → HALF_OPEN happens by time alone; a reset that comes after it returns only its
    own change, and `drain_transitions` (what the supervisor logs from) has both."""
    clock = FakeClock()
    breaker = CircuitBreaker(1, 10.0, clock)
    breaker.record_failure()
    clock.advance(10.0)
    assert breaker.reset() == Transition(HALF_OPEN, CLOSED, 1010.0, "manual reset")
    assert [(t.old, t.new) for t in breaker.drain_transitions()] == [
        (CLOSED, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, CLOSED),
    ]


@pytest.mark.parametrize(
    ("threshold", "timeout"),
    [(0, 1.0), (1, -1.0), (1, float("nan")), (1, float("inf"))],
)
def test_breaker_rejects_nonsense(threshold: int, timeout: float) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(threshold, timeout, FakeClock())


# --- the model ---------------------------------------------------------------------------------


@attrs.define
class Model:
    """What DESIGN §5 says, written as plainly as possible (state stored, never lazy)."""

    threshold: int
    timeout: float
    state: BreakerState = CLOSED
    failures: int = 0
    opened_at: float | None = None
    probe_out: bool = False

    def tick(self, now: float) -> bool:
        """OPEN → HALF_OPEN once the timeout has run; True if it happened now."""
        opened = self.opened_at
        if self.state is OPEN and opened is not None and now >= opened + self.timeout:
            self.state, self.probe_out = HALF_OPEN, False
            return True
        return False

    def fail(self, now: float) -> BreakerState | None:
        if self.state is EXHAUSTED:
            return None
        self.failures += 1
        if (self.state is CLOSED and self.failures >= self.threshold) or self.state is HALF_OPEN:
            self.state, self.opened_at, self.probe_out = OPEN, now, False
            return OPEN
        return None

    def succeed(self) -> BreakerState | None:
        if self.state is CLOSED:
            self.failures = 0
        elif self.state is HALF_OPEN:
            self.state, self.failures, self.opened_at, self.probe_out = CLOSED, 0, None, False
            return CLOSED
        return None


class BreakerMachine(RuleBasedStateMachine):
    """Random sequences of outcomes and clock jumps; the breaker must track the model."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.breaker: CircuitBreaker
        self.model: Model
        self.run_of_failures = 0  # since the last success or reset, counted independently
        self.probes_granted_this_half_open = 0
        self.last_state = CLOSED
        self.forced_exhaust = False

    @initialize(
        threshold=st.integers(min_value=1, max_value=6),
        timeout=st.one_of(st.just(60.0), st.floats(min_value=0.0, max_value=100.0)),
    )
    def build(self, threshold: int, timeout: float) -> None:
        self.breaker = CircuitBreaker(threshold, timeout, self.clock)
        self.model = Model(threshold, timeout)

    def _sync_time(self) -> None:
        if self.model.tick(self.clock.now):
            self.probes_granted_this_half_open = 0

    def _check(self, got: Transition | None, want: BreakerState | None, old: BreakerState) -> None:
        if want is None:
            assert got is None
        else:
            assert got is not None
            assert (got.old, got.new, got.at) == (old, want, self.clock.now)

    @rule(seconds=st.one_of(st.floats(min_value=0.0, max_value=150.0), st.just(0.0)))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def advance_to_deadline(self) -> None:
        """Land exactly on the recovery deadline, where off-by-one bugs live."""
        self.clock.advance(self.breaker.remaining_open())

    @rule()
    def failure(self) -> None:
        self._sync_time()
        old = self.model.state
        if old is not EXHAUSTED:
            self.run_of_failures += 1
        want = self.model.fail(self.clock.now)
        got = self.breaker.record_failure()
        self._check(got, want, old)
        if want is OPEN:
            if old is CLOSED:
                assert self.run_of_failures == self.model.threshold
            if self.model.timeout > 0:  # the timer (re)starts now
                # (1000 + timeout) - 1000 in floats: exact to the clock's resolution
                assert math.isclose(self.breaker.remaining_open(), self.model.timeout, abs_tol=1e-9)

    @rule(count=st.integers(min_value=2, max_value=6))
    def failure_burst(self, count: int) -> None:
        """Several failures in a row, so OPEN, probes and EXHAUSTED are reached often."""
        for _ in range(count):
            self.failure()

    @rule()
    def success(self) -> None:
        self._sync_time()
        old = self.model.state
        want = self.model.succeed()
        got = self.breaker.record_success()
        self._check(got, want, old)
        if old in (CLOSED, HALF_OPEN):
            self.run_of_failures = 0

    @rule()
    def try_probe(self) -> None:
        self._sync_time()
        granted = self.breaker.try_acquire_probe()
        want = self.model.state is HALF_OPEN and not self.model.probe_out
        assert granted is want
        if granted:
            self.model.probe_out = True
            self.probes_granted_this_half_open += 1

    @rule()
    def poll(self) -> None:
        became_half_open = self.model.tick(self.clock.now)
        got = self.breaker.poll()
        if became_half_open:
            self.probes_granted_this_half_open = 0
            assert got is not None and (got.old, got.new) == (OPEN, HALF_OPEN)
            assert self.model.opened_at is not None
            assert got.at == self.model.opened_at + self.model.timeout
        else:
            assert got is None

    @precondition(lambda self: self.model.failures >= 1)
    @rule()
    def exhaust(self) -> None:
        """The owner's path when its backoff has no reconnection attempt left."""
        self._sync_time()
        old = self.model.state
        got = self.breaker.exhaust()
        if old is EXHAUSTED:
            assert got is None
        else:
            self.model.state, self.model.probe_out = EXHAUSTED, False
            self.forced_exhaust = True
            assert got is not None and (got.old, got.new, got.at) == (
                old,
                EXHAUSTED,
                self.clock.now,
            )

    @precondition(lambda self: self.model.failures > 0 or self.model.state is not CLOSED)
    @rule()
    def reset(self) -> None:
        self._sync_time()
        old = self.model.state
        got = self.breaker.reset()
        self.model = Model(self.model.threshold, self.model.timeout)
        self.run_of_failures = 0
        self.forced_exhaust = False
        self._check(got, None if old is CLOSED else CLOSED, old)
        assert self.breaker.state is CLOSED and self.breaker.consecutive_failures == 0

    @invariant()
    def matches_model(self) -> None:
        # the model is stored, the breaker lazy: compare as of now without touching the model
        expected = self.model.state
        opened = self.model.opened_at
        if (
            expected is OPEN
            and opened is not None
            and self.clock.now >= opened + self.model.timeout
        ):
            expected = HALF_OPEN
        assert self.breaker.state is expected
        assert self.breaker.consecutive_failures == self.model.failures
        assert self.breaker.time_in_state() >= 0.0

    @invariant()
    def safety(self) -> None:
        state = self.breaker.state
        if state is CLOSED:
            assert self.breaker.consecutive_failures < self.model.threshold
        if state is OPEN:
            # no WebSocket attempt before recovery_timeout has passed since opening
            opened = self.model.opened_at
            assert opened is not None and self.clock.now < opened + self.model.timeout
            assert self.breaker.remaining_open() > 0.0
        else:
            assert self.breaker.remaining_open() == 0.0
        if state is not HALF_OPEN:
            assert not self.breaker.try_acquire_probe()  # no probe outside HALF_OPEN
        assert self.probes_granted_this_half_open <= 1
        assert (state is EXHAUSTED) == self.forced_exhaust

    @invariant()
    def transitions_chain(self) -> None:
        """Every change is reported once, in order, each starting where the last one ended."""
        for t in self.breaker.drain_transitions():
            event(f"{t.old.value} -> {t.new.value}")
            assert t.old is self.last_state and t.new is not t.old
            self.last_state = t.new
        # a lazily computed HALF_OPEN is reported when something materialises it
        now = self.breaker.state
        assert self.last_state is now or (self.last_state, now) == (OPEN, HALF_OPEN)


BreakerMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=30, deadline=None)
TestBreakerMachine = BreakerMachine.TestCase
