"""The sequencer: no duplicate and nothing older after newer, whatever the interleaving."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from foxtrot_stream.model import Tick, TransportKind
from foxtrot_stream.sequencer import Sequencer


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


def collect() -> tuple[Sequencer, list[Tick]]:
    out: list[Tick] = []
    return Sequencer([out.append]), out


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
    assert seqr.counts.stale == 1
    seqr.polled(tick(None, bid=3.0, received=3_000), requested_ns=1_500)  # asked after: newer
    assert [t.bid for t in out] == [2.0, 3.0]


def test_polled_exact_repeats_are_dropped() -> None:
    seqr, out = collect()
    seqr.polled(tick(None, bid=1.0), requested_ns=1)
    seqr.polled(tick(None, bid=1.0), requested_ns=2)
    seqr.polled(tick(None, bid=1.5), requested_ns=3)
    assert [t.bid for t in out] == [1.0, 1.5]
    assert seqr.counts.duplicate == 1


def test_stream_resumes_after_polling() -> None:
    seqr, out = collect()
    seqr.streamed(tick(10, received=100))
    seqr.polled(tick(None, bid=5.0, received=300), requested_ns=200)
    seqr.streamed(tick(9, received=400))  # a late replay from before the outage
    seqr.streamed(tick(12, received=500))
    assert [(t.seq, t.bid) for t in out] == [(10, 1.0), (None, 5.0), (12, 1.0)]


def test_forget_starts_fresh() -> None:
    seqr, out = collect()
    seqr.streamed(tick(10))
    seqr.forget("BTCUSDT")
    seqr.streamed(tick(3))
    assert [t.seq for t in out] == [10, 3]
