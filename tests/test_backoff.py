"""The reconnection schedule and the healthy-again gate (DESIGN §5), without waiting."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from foxtrot_stream.policy.backoff import Backoff, HealthGate, schedule
from foxtrot_stream.testing import FakeClock

# The guide's "Example Reconnection Timeline" with its defaults (1.0 / 60.0).
GUIDE_TIMELINE = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]

delays = st.floats(min_value=1e-3, max_value=1e4, allow_nan=False, allow_infinity=False)
jitters = st.floats(min_value=0.0, max_value=1.0)


@st.composite
def bounds(draw: st.DrawFn) -> tuple[float, float]:
    base = draw(delays)
    cap = draw(st.floats(min_value=base, max_value=base * 2**20))
    return base, cap


def test_guide_timeline() -> None:
    backoff = Backoff(base_delay=1.0, max_delay=60.0, max_attempts=50)
    assert [backoff.next_delay() for _ in GUIDE_TIMELINE] == GUIDE_TIMELINE
    assert [schedule(1.0, 60.0, n) for n in range(1, 10)] == GUIDE_TIMELINE


@given(bounds(), st.integers(min_value=1, max_value=5000))
def test_schedule_never_exceeds_cap(b: tuple[float, float], n: int) -> None:
    base, cap = b
    assert 0 < schedule(base, cap, n) <= cap


@given(bounds(), st.integers(min_value=1, max_value=200))
def test_schedule_doubles_until_cap_then_constant(b: tuple[float, float], n: int) -> None:
    base, cap = b
    this, after = schedule(base, cap, n), schedule(base, cap, n + 1)
    assert after >= this
    if this == cap:
        assert after == cap
    else:
        assert after == min(this * 2, cap)


@given(bounds(), st.integers(min_value=10**4, max_value=10**30))
def test_schedule_huge_n_saturates_without_overflow(b: tuple[float, float], n: int) -> None:
    base, cap = b
    assert schedule(base, cap, n) == cap


def test_schedule_rejects_attempt_zero() -> None:
    with pytest.raises(ValueError):
        schedule(1.0, 60.0, 0)


@given(bounds(), jitters, st.integers(min_value=0, max_value=2**32), st.integers(1, 80))
def test_jitter_stays_between_reduced_and_plain_schedule(
    b: tuple[float, float], jitter: float, seed: int, count: int
) -> None:
    base, cap = b
    backoff = Backoff(base, cap, max_attempts=count + 1, jitter=jitter, rng=random.Random(seed))
    for n in range(1, count + 1):
        delay = backoff.next_delay()
        plain = schedule(base, cap, n)
        assert delay is not None
        assert plain * (1.0 - jitter) <= delay <= plain <= cap


def test_jitter_is_reproducible_with_a_seeded_rng() -> None:
    def run() -> list[float | None]:
        backoff = Backoff(1.0, 60.0, 20, jitter=0.5, rng=random.Random(7))
        return [backoff.next_delay() for _ in range(10)]

    first = run()
    assert first == run()
    assert first != [*GUIDE_TIMELINE, 60.0]


@given(bounds(), st.integers(min_value=1, max_value=60), st.integers(min_value=0, max_value=80))
def test_attempts_count_and_exhaust_exactly_at_max(
    b: tuple[float, float], max_attempts: int, calls: int
) -> None:
    base, cap = b
    backoff = Backoff(base, cap, max_attempts)
    results = [backoff.next_delay() for _ in range(calls)]
    for n, delay in enumerate(results, start=1):
        # the guide: max_attempts is the maximum number of reconnection attempts. Failure n
        # asks for attempt n; the failure after the last allowed attempt gets None.
        assert (delay is None) == (n > max_attempts)
        if delay is not None:
            assert delay == schedule(base, cap, n)
    assert backoff.attempts == min(calls, max_attempts)
    assert backoff.exhausted == (calls >= max_attempts)


def test_max_attempts_3_allows_exactly_3_reconnection_attempts() -> None:
    backoff = Backoff(1.0, 60.0, max_attempts=3)
    # the drop, then each reconnection attempt failing in turn
    assert [backoff.next_delay() for _ in range(5)] == [1.0, 2.0, 4.0, None, None]


@given(
    bounds(),
    st.integers(min_value=2, max_value=30),
    st.lists(st.sampled_from(["fail", "reset"]), max_size=100),
)
def test_reset_restarts_counting_at_one(
    b: tuple[float, float], max_attempts: int, events: list[str]
) -> None:
    base, cap = b
    backoff = Backoff(base, cap, max_attempts)
    expected_attempts = 0
    for event in events:
        if event == "reset":
            backoff.reset()
            expected_attempts = 0
            assert not backoff.exhausted
        else:
            delay = backoff.next_delay()
            if expected_attempts < max_attempts:
                expected_attempts += 1
                assert delay == schedule(base, cap, expected_attempts)
            else:
                assert delay is None
        assert backoff.attempts == expected_attempts
    backoff.reset()
    assert backoff.next_delay() == base


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((0.0, 60.0, 5), {}),
        ((-1.0, 60.0, 5), {}),
        ((1.0, 0.5, 5), {}),
        ((1.0, float("inf"), 5), {}),
        ((1.0, 60.0, 0), {}),
        ((1.0, 60.0, 5), {"jitter": -0.1}),
        ((1.0, 60.0, 5), {"jitter": 1.5}),
    ],
)
def test_backoff_rejects_nonsense(args: tuple[float, float, int], kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(*args, **kwargs)  # type: ignore[arg-type]


# --- HealthGate -------------------------------------------------------------------------------

gate_events = st.lists(
    st.one_of(
        st.just(("connect", 0.0)),
        st.just(("data", 0.0)),
        st.just(("disconnect", 0.0)),
        st.tuples(st.just("advance"), st.floats(min_value=0.0, max_value=60.0)),
        st.just(("poll", 0.0)),
    ),
    max_size=60,
)


@given(st.floats(min_value=0.0, max_value=30.0), gate_events)
def test_health_gate_needs_data_and_hold_and_fires_once(
    hold: float, events: list[tuple[str, float]]
) -> None:
    clock = FakeClock()
    gate = HealthGate(clock, hold)
    connected_at: float | None = None
    data = fired = False
    for kind, amount in events:
        if kind == "connect":
            gate.on_connected()
            connected_at, data, fired = clock.now, False, False
        elif kind == "data":
            gate.on_valid_data()
            data = data or connected_at is not None
        elif kind == "disconnect":
            gate.on_disconnected()
            connected_at, data, fired = None, False, False
        elif kind == "advance":
            clock.advance(amount)
        else:
            due = (
                connected_at is not None and data and not fired and clock.now - connected_at >= hold
            )
            assert gate.poll() is due
            fired = fired or due
        remaining = gate.remaining()
        if connected_at is None or fired:
            assert remaining is None
        else:
            assert remaining == max(0.0, connected_at + hold - clock.now)


def test_health_gate_flapping_connection_never_counts() -> None:
    clock = FakeClock()
    gate = HealthGate(clock, hold=30.0)
    for _ in range(10):
        gate.on_connected()
        gate.on_valid_data()
        clock.advance(29.0)
        assert not gate.poll()
        gate.on_disconnected()
    gate.on_connected()
    clock.advance(31.0)
    assert not gate.poll()  # up long enough but no valid data yet
    gate.on_valid_data()
    assert gate.poll()
    assert not gate.poll()
