"""The sequencer: no duplicate and nothing older after newer, whatever the interleaving."""

from __future__ import annotations

import itertools
import math

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from foxtrot_stream.contract.model import Tick, TransportKind
from foxtrot_stream.runtime.sequencer import Sequencer

WS, HTTP = TransportKind.WEBSOCKET, TransportKind.HTTP


def tick(
    seq: int | None,
    trade_id: int | None = None,
    *,
    symbol: str = "BTCUSDT",
    bid: float = 1.0,
    received: int = 0,
) -> Tick:
    transport = TransportKind.WEBSOCKET if seq is not None else TransportKind.HTTP
    return Tick("t", symbol, bid, 1.0, bid + 1, 1.0, None, seq, trade_id, None, received, transport)


def collect(symbols: tuple[str, ...] = ("BTCUSDT", "A", "B", "C")) -> tuple[Sequencer, list[Tick]]:
    out: list[Tick] = []
    seqr = Sequencer([out.append])
    for symbol in symbols:
        seqr.track(symbol)
    return seqr, out


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["A", "B", "C"]),
            st.integers(0, 50),
            st.one_of(st.none(), st.integers(0, 50)),
        ),
        max_size=200,
    )
)
def test_streamed_ticks_strictly_increase_per_symbol(
    frames: list[tuple[str, int, int | None]],
) -> None:
    seqr, out = collect()
    for symbol, seq, trade_id in frames:
        seqr.streamed(tick(seq, trade_id, symbol=symbol))
    last: dict[str, tuple[int, int]] = {}
    for t in out:
        key = (t.seq or 0, t.trade_id if t.trade_id is not None else -1)
        assert key > last.get(t.symbol, (-1, -1))
        last[t.symbol] = key
    c = seqr.counts
    assert c.delivered + c.duplicate + c.stale == len(frames)
    # everything dropped was either an exact repeat or older than something delivered
    assert c.delivered == len(out)


def test_exact_replays_count_as_duplicates() -> None:
    seqr, out = collect()
    for s in (1, 2, 2, 3, 1):
        seqr.streamed(tick(s))
    assert [t.seq for t in out] == [1, 2, 3]
    assert (seqr.counts.duplicate, seqr.counts.stale) == (1, 1)
    assert seqr.per_symbol["BTCUSDT"].duplicate == 1


def test_trade_updates_with_the_same_book_id_are_new() -> None:
    seqr, out = collect()
    seqr.streamed(tick(10, None))
    seqr.streamed(tick(10, 5))
    seqr.streamed(tick(10, 6))
    seqr.streamed(tick(10, 6))
    seqr.streamed(tick(11, 6))
    assert [(t.seq, t.trade_id) for t in out] == [(10, None), (10, 5), (10, 6), (11, 6)]


def test_polled_quote_never_overrides_a_newer_streamed_one() -> None:
    seqr, out = collect()
    seqr.streamed(tick(10, bid=2.0, received=1_000))
    seqr.polled(tick(None, bid=1.0, received=2_000), requested_ns=900)  # asked before the WS tick
    assert [t.bid for t in out] == [2.0]
    assert (seqr.counts.polled_superseded, seqr.counts.stale) == (1, 0)
    seqr.polled(tick(None, bid=3.0, received=3_000), requested_ns=1_500)  # asked after: newer
    assert [t.bid for t in out] == [2.0, 3.0]


def test_a_streamed_copy_of_what_rest_already_delivered_is_not_delivered_again() -> None:
    """REST can show an update before the WebSocket does: the streamed tick for it then
    carries nothing new (same book, no new trade), but its ids become the symbol's."""
    seqr, out = collect()
    seqr.streamed(tick(10, 7, bid=1.0, received=100))
    seqr.polled(tick(None, bid=2.0, received=300), requested_ns=200)
    seqr.streamed(tick(11, 7, bid=2.0, received=400))  # the same update, streamed
    seqr.streamed(tick(11, 8, bid=2.0, received=450))  # a trade: new
    seqr.streamed(tick(11, 8, bid=2.0, received=460))  # a repeat
    seqr.streamed(tick(12, 8, bid=3.0, received=500))
    assert [(t.seq, t.trade_id, t.bid) for t in out] == [
        (10, 7, 1.0),
        (None, None, 2.0),
        (11, 8, 2.0),
        (12, 8, 3.0),
    ]
    assert seqr.counts.duplicate == 2


def test_polled_exact_repeats_are_dropped() -> None:
    seqr, out = collect()
    seqr.polled(tick(None, bid=1.0), requested_ns=1)
    seqr.polled(tick(None, bid=1.0), requested_ns=2)
    seqr.polled(tick(None, bid=1.5), requested_ns=3)
    assert [t.bid for t in out] == [1.0, 1.5]
    assert (seqr.counts.polled_unchanged, seqr.counts.duplicate) == (1, 0)


def test_stream_resumes_after_polling() -> None:
    seqr, out = collect()
    seqr.streamed(tick(10, received=100))
    seqr.polled(tick(None, bid=5.0, received=300), requested_ns=200)
    seqr.streamed(tick(9, received=400))  # a late replay from before the outage
    seqr.streamed(tick(12, received=500))
    assert [(t.seq, t.bid) for t in out] == [(10, 1.0), (None, 5.0), (12, 1.0)]


def test_forget_then_track_starts_fresh() -> None:
    seqr, out = collect()
    seqr.streamed(tick(10))
    seqr.forget("BTCUSDT")
    seqr.streamed(tick(11))  # in flight when it was unsubscribed: dropped, not malformed
    seqr.track("BTCUSDT")
    seqr.streamed(tick(3))
    assert [t.seq for t in out] == [10, 3]
    assert (seqr.counts.unsubscribed, seqr.counts.rejected) == (1, 0)


# --- the edge: what never reaches consumers ----------------------------------------------------


def rejecting() -> tuple[Sequencer, list[Tick], list[str]]:
    out: list[Tick] = []
    reasons: list[str] = []
    seqr = Sequencer([out.append], rejected=lambda why, t: reasons.append(why))
    seqr.track("BTCUSDT")
    return seqr, out, reasons


def test_a_tick_for_a_symbol_nobody_subscribed_is_rejected() -> None:
    seqr, out, reasons = rejecting()
    seqr.streamed(tick(1, symbol="ETHUSDT"))
    assert seqr.polled(tick(None, symbol="ETHUSDT"), requested_ns=1) is False
    assert out == [] and seqr.counts.rejected == 2
    assert reasons == ["a tick for 'ETHUSDT', which is not subscribed"] * 2


@pytest.mark.parametrize(
    ("bid", "ask", "last"),
    [
        (math.nan, 2.0, None),
        (1.0, math.inf, None),
        (-1.0, 2.0, None),
        (0.0, 2.0, None),
        (2.0, 1.0, None),  # crossed
        (1.0, 1.0, None),  # locked: a real book never holds bid == ask
        (1.0, 2.0, math.nan),
        (1.0, 2.0, -5.0),
        (1.0, 2.0, math.inf),
    ],
)
def test_implausible_prices_are_rejected_on_both_paths(
    bid: float, ask: float, last: float | None
) -> None:
    seqr, out, reasons = rejecting()
    bad = Tick("t", "BTCUSDT", bid, 1.0, ask, 1.0, last, 1, None, None, 0, WS)
    seqr.streamed(bad)
    seqr.polled(msgspec.structs.replace(bad, seq=None, transport=HTTP), requested_ns=1)
    assert out == []
    assert seqr.counts.rejected == 2
    assert "implausible prices for BTCUSDT" in reasons[0]
    seqr.streamed(tick(2))  # the symbol goes on
    assert [t.seq for t in out] == [2]


# --- resynchronisation after an exchange-side id reset -----------------------------------------

SECOND = 1_000_000_000


def test_an_id_reset_is_recognised_counted_and_the_symbol_continues() -> None:
    resyncs: list[tuple[str, tuple[int, int], tuple[int, int]]] = []
    out: list[Tick] = []
    seqr = Sequencer([out.append], resynced=lambda *a: resyncs.append(a))
    seqr.track("BTCUSDT")
    t = 0
    for seq in range(1000, 1010):
        t += SECOND // 20
        seqr.streamed(tick(seq, received=t))
    # the exchange restarts: ids from 1, at the same pace
    for seq in range(1, 40):
        t += SECOND // 20
        seqr.streamed(tick(seq, received=t))
    delivered = [x.seq for x in out]
    assert delivered[:10] == list(range(1000, 1010))
    resumed = delivered[10:]
    # a second of older ids (and at least three of them), then it continues from the new ids
    assert resumed == list(range(resumed[0], 40)) and 19 <= resumed[0] <= 22
    assert resyncs == [("BTCUSDT", (1009, -1), (resumed[0], -1))]
    assert seqr.counts.resyncs == 1 and seqr.per_symbol["BTCUSDT"].resyncs == 1


def test_a_single_forward_jump_is_recovered_from() -> None:
    seqr, out = collect()
    t = 0
    for seq in (10, 11, 10**15, 12, 13, 14, 15, 16):
        t += SECOND // 2
        seqr.streamed(tick(seq, received=t))
    assert [x.seq for x in out] == [10, 11, 10**15, 14, 15, 16]
    assert seqr.counts.resyncs == 1


def test_a_lagging_copy_interleaved_with_newer_ticks_never_resyncs() -> None:
    """A rotation's overlap: the old connection lags, its copies keep arriving, but newer
    ticks from the new connection keep being accepted in between."""
    seqr, out = collect()
    t = 0
    for seq in range(100, 200):
        t += SECOND // 10
        seqr.streamed(tick(seq, received=t))  # the new connection
        seqr.streamed(tick(seq - 5, received=t))  # the old one, 5 behind
    assert [x.seq for x in out] == list(range(100, 200))
    assert seqr.counts.resyncs == 0


def test_older_ids_after_a_stall_without_a_run_are_not_a_reset() -> None:
    seqr, out = collect()
    seqr.streamed(tick(100, received=0))
    seqr.streamed(tick(99, received=5 * SECOND))  # one stray old frame, long after
    seqr.streamed(tick(98, received=6 * SECOND))  # not increasing: the run starts again
    assert [x.seq for x in out] == [100]
    assert seqr.counts.resyncs == 0


def unsequenced(ts: int | None, bid: float, last: float | None = None) -> Tick:
    """A tick of an exchange without ids (OKX's tickers): only its time orders it."""
    return Tick("t", "BTCUSDT", bid, 1.0, bid + 1, 1.0, last, None, None, ts, 0, WS)


def test_ticks_without_ids_are_delivered_not_taken_for_duplicates() -> None:
    seqr, out = collect()
    for i in range(5):
        seqr.streamed(unsequenced(1_000 + i, 1.0 + i))
    assert [t.exchange_ts for t in out] == [1_000, 1_001, 1_002, 1_003, 1_004]
    assert seqr.counts.duplicate == 0


@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.integers(min_value=0, max_value=20)),
            st.integers(min_value=1, max_value=4),
        ),
        max_size=40,
    )
)
def test_without_ids_time_orders_and_repeats_are_dropped(
    steps: list[tuple[int | None, int]],
) -> None:
    """Never an older exchange time after a newer one, never the same update twice in a row,
    and every tick newer than everything before it is delivered."""
    seqr, out = collect()
    for ts, bid in steps:
        before = len(out)
        newest = max((t.exchange_ts for t in out if t.exchange_ts is not None), default=-1)
        timed = not out or out[-1].exchange_ts is not None
        seqr.streamed(unsequenced(ts, float(bid)))
        if ts is not None and ts > newest and timed and len(out) == before:
            raise AssertionError(f"a newer tick ({ts} after {newest}) was dropped")
    times = [t.exchange_ts for t in out if t.exchange_ts is not None]
    assert times == sorted(times)
    pairs = list(itertools.pairwise(out))
    assert all(
        (a.exchange_ts, a.bid) != (b.exchange_ts, b.bid) or a.exchange_ts is None for a, b in pairs
    )
    assert seqr.counts.delivered + seqr.counts.duplicate + seqr.counts.stale == len(steps)
