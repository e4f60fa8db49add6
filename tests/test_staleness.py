"""Per-symbol staleness: judged against each symbol's own pace, never before it is known."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from foxtrot_stream.staleness import StalenessTracker, Verdict


def feed_steady(t: StalenessTracker, symbol: str, gap: float, until: float) -> float:
    now, count = 0.0, 0
    while now < until:
        now += gap
        count += 1
        assert t.observe(symbol, count, now) is Verdict.FRESH
    return now


def test_busy_symbol_that_stops_is_stale_then_escalated_then_recovers() -> None:
    t = StalenessTracker(floor=0.6)
    now = feed_steady(t, "BTC", 0.05, 2.0)
    count = 40
    assert t.observe("BTC", count, now + 0.5) is Verdict.FRESH  # below the 0.6 s floor
    assert t.observe("BTC", count, now + 0.7) is Verdict.STALE
    assert t.observe("BTC", count, now + 1.0) is Verdict.FRESH  # said once
    assert t.observe("BTC", count, now + 1.4) is Verdict.STILL_STALE
    assert t.observe("BTC", count, now + 5.0) is Verdict.FRESH  # said once
    assert t.observe("BTC", count + 1, now + 5.1) is Verdict.RECOVERED


@given(gap=st.floats(0.5, 30.0), checks=st.integers(1, 200))
def test_a_quiet_but_steady_symbol_never_triggers(gap: float, checks: int) -> None:
    t = StalenessTracker(floor=0.6)
    now = 0.0
    for count in range(checks):
        # the checker runs far more often than this symbol updates
        for i in range(1, 5):
            assert t.observe("ILLIQ", count, now + gap * i / 5) is Verdict.FRESH
        now += gap
        assert t.observe("ILLIQ", count + 1, now) is Verdict.FRESH


def test_nothing_is_judged_before_the_pace_is_known() -> None:
    t = StalenessTracker(floor=0.1)
    assert t.observe("NEW", 0, 0.0) is Verdict.FRESH
    assert t.observe("NEW", 0, 100.0) is Verdict.FRESH
    assert t.threshold("NEW") is None


def test_restart_forgets_a_pause() -> None:
    t = StalenessTracker(floor=0.6)
    now = feed_steady(t, "BTC", 0.05, 2.0)
    t.restart("BTC", now + 5.0)  # e.g. reconnected
    assert t.observe("BTC", 40, now + 5.3) is Verdict.FRESH
