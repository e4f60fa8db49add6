"""Metrics: recording, percentiles, rates, errors per minute, and the clock offset estimate."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from foxtrot_stream.contract.model import Tick, TransportKind
from foxtrot_stream.runtime.metrics import (
    LATENCY_BUCKETS,
    LATENCY_RING,
    ClockOffset,
    FeedMetrics,
    latency_stats,
)
from foxtrot_stream.runtime.sequencer import Sequencer
from foxtrot_stream.testing import FakeClock

NOW_NS = 1_800_000_000_000_000_000


def tick(
    symbol: str = "BTCUSDT",
    *,
    received_ns: int = NOW_NS,
    exchange_ms: int | None,
    seq: int | None = None,
    bid: float = 1.0,
) -> Tick:
    transport = TransportKind.HTTP if exchange_ms is None else TransportKind.WEBSOCKET
    fields = (bid, 1.0, 2.0, 1.0, None, seq, None, exchange_ms, received_ns)
    return Tick("binance", symbol, *fields, transport)


def sequenced(clock: FakeClock | None = None) -> tuple[Sequencer, FeedMetrics]:
    """A sequencer delivering to metrics, as in the feed: counts come from the sequencer,
    latency samples from the ticks that carry an exchange time."""
    sequencer = Sequencer([])
    for symbol in ("BTCUSDT", "ETHUSDT"):
        sequencer.track(symbol)
    metrics = FeedMetrics(sequencer.delivered, clock or FakeClock())
    sequencer.latency = metrics.record
    return sequencer, metrics


def test_a_tick_with_an_exchange_time_is_one_latency_sample() -> None:
    sequencer, metrics = sequenced()
    sequencer.streamed(tick(received_ns=NOW_NS, exchange_ms=NOW_NS // 1_000_000 - 42, seq=1))
    sequencer.polled(tick(received_ns=NOW_NS + 5, exchange_ms=None, bid=1.5), NOW_NS + 1)
    m = metrics.symbol("BTCUSDT")
    assert (m.ticks, m.lat_n, m.last_ns) == (2, 1, NOW_NS + 5)
    assert math.isclose(m.lat[0], 0.042, abs_tol=1e-6)
    m.fold()
    le = dict(zip(LATENCY_BUCKETS, m.buckets, strict=False))
    assert (le[0.025], le[0.05], le[5.0], m.buckets[-1]) == (0, 1, 1, 1)
    assert math.isclose(m.lat_sum, 0.042, abs_tol=1e-6)
    stats = latency_stats(m.window(NOW_NS))
    assert (stats.samples, stats.p50, stats.max) == (1, 42.0, 42.0)


def test_a_latency_on_a_bucket_bound_is_counted_in_that_bucket() -> None:
    _, metrics = sequenced()
    metrics.record(tick(received_ns=NOW_NS, exchange_ms=NOW_NS // 1_000_000 - 100))
    m = metrics.symbols["BTCUSDT"]
    m.fold()
    le = dict(zip(LATENCY_BUCKETS, m.buckets, strict=False))
    assert (le[0.05], le[0.1]) == (0, 1)


@pytest.mark.parametrize(
    "bound", [b for b in LATENCY_BUCKETS if math.isfinite(b) and round(b * 1000, 9).is_integer()]
)
def test_every_whole_millisecond_bound_holds_its_own_latency(bound: float) -> None:
    # epoch-sized times: the latency is taken in integer ns, so a latency of exactly `bound`
    # is not nudged over it by float rounding (found in review: 5 ms landed in 10 ms)
    _, metrics = sequenced()
    ms = round(bound * 1000)
    received = 1_764_392_812_345_000_000  # an ordinary epoch time (NOW_NS is too round)
    metrics.record(tick(received_ns=received, exchange_ms=received // 1_000_000 - ms))
    m = metrics.symbols["BTCUSDT"]
    m.fold()
    assert m.buckets[LATENCY_BUCKETS.index(bound)] == 1
    below = LATENCY_BUCKETS.index(bound) - 1
    assert below < 0 or m.buckets[below] == 0


def test_percentiles_are_nearest_rank_over_the_window() -> None:
    stats = latency_stats([i / 1000 for i in range(1, 101)])  # 1 … 100 ms
    assert (stats.p50, stats.p95, stats.p99, stats.max, stats.samples) == (50, 95, 99, 100, 100)
    shifted = latency_stats([0.010, 0.020], shift=-0.005)
    assert (shifted.p50, shifted.max) == (5.0, 15.0)
    assert latency_stats([]).p50 is None


def test_the_window_keeps_the_last_minute_and_at_most_the_ring() -> None:
    _, metrics = sequenced()
    base_ms = NOW_NS // 1_000_000
    for i in range(LATENCY_RING + 10):
        received = NOW_NS + i * 1_000_000
        metrics.record(tick(received_ns=received, exchange_ms=base_ms + i - 7))
    m = metrics.symbols["BTCUSDT"]
    end = NOW_NS + (LATENCY_RING + 9) * 1_000_000
    assert len(m.window(end)) == LATENCY_RING
    assert len(m.window(end, seconds=0.0995)) == 100  # samples 1 ms apart
    assert len(m.window(end + 120 * 10**9)) == 0  # all older than a minute
    m.fold()
    assert m.buckets[-1] == LATENCY_RING + 10  # the histogram counts everything: the ring
    assert m.buckets[LATENCY_BUCKETS.index(0.01)] == LATENCY_RING + 10  # folded as it wrapped


def test_update_rate_over_the_last_ten_seconds() -> None:
    clock = FakeClock()
    sequencer, metrics = sequenced(clock)
    seq = 0
    for _second in range(30):
        metrics.sample(["BTCUSDT", "ETHUSDT"])
        for _ in range(25):
            seq += 1
            sequencer.streamed(tick(exchange_ms=None, seq=seq))
            if seq % 5 == 0:
                sequencer.streamed(tick("ETHUSDT", exchange_ms=None, seq=seq))
        clock.advance(1.0)
    assert metrics.symbol("BTCUSDT").rate(clock()) == 25.0
    assert metrics.symbol("ETHUSDT").rate(clock()) == 5.0
    assert metrics.rate() == 30.0
    clock.advance(5.0)  # silence: the rate falls as the window moves on
    metrics.sample(["BTCUSDT", "ETHUSDT"])
    assert 0 < metrics.rate() < 30.0


def test_errors_per_minute_forget_older_errors() -> None:
    clock = FakeClock()
    _, metrics = sequenced(clock)
    metrics.error("dropped")
    clock.advance(30)
    metrics.error("dropped")
    metrics.error("no_data")
    assert metrics.errors_per_minute() == {"dropped": 2, "no_data": 1}
    clock.advance(31)
    assert metrics.errors_per_minute() == {"dropped": 1, "no_data": 1}
    clock.advance(60)
    assert metrics.errors_per_minute() == {}


# --- clock offset -------------------------------------------------------------------------------

delays = st.floats(min_value=0.0, max_value=0.5, allow_nan=False)


@settings(max_examples=300)
@given(
    true_offset=st.floats(min_value=-5.0, max_value=5.0, allow_nan=False),
    trips=st.lists(st.tuples(delays, delays), min_size=1, max_size=40),
)
def test_the_true_offset_lies_within_the_reported_uncertainty(
    true_offset: float, trips: list[tuple[float, float]]
) -> None:
    """Whatever the (asymmetric) delays, the estimate is off by at most its uncertainty."""
    estimator = ClockOffset(keep=16)
    local = 1_800_000_000.0
    for out, back in trips:
        sent = local
        server_ms = round((sent + out + true_offset) * 1000)
        received = sent + out + back
        estimator.add(sent, server_ms, received)
        local = received + 1.0
    assert estimator.offset is not None and estimator.uncertainty is not None
    # the server's clock has 1 ms resolution: allow the rounding on top, and the float error
    # of epoch-sized times (about 2.4e-7 s at 1.8e9 s; a half-millisecond rounding plus that
    # error was found by hypothesis, with 1e-9 allowed)
    assert abs(estimator.offset - true_offset) <= estimator.uncertainty + 0.0005 + 1e-6


def test_the_fastest_round_trip_wins() -> None:
    estimator = ClockOffset()
    estimator.add(100.0, 100_600, 101.0)  # rtt 1 s: offset 0.1 ± 0.5
    estimator.add(200.0, 200_250, 200.010)  # rtt 10 ms: offset 0.245 ± 0.005
    estimator.add(300.0, 300_900, 300.5)
    assert math.isclose(estimator.offset or 0, 0.245)
    assert math.isclose(estimator.uncertainty or 0, 0.005)
    assert estimator.total == 3


def test_a_sample_taken_while_the_local_clock_stepped_back_is_ignored() -> None:
    estimator = ClockOffset()
    estimator.add(100.0, 100_000, 99.0)
    assert estimator.offset is None and estimator.total == 0
