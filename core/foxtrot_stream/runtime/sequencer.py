"""Per-symbol ordering: consumers never see a duplicate, or an older quote after a newer one.

Streamed ticks carry the exchange's book update id and trade id; a tick is delivered only if
``(seq, trade_id)`` is newer than the last delivered one. An exchange without ids (both None)
is ordered by its time instead (`exchange_ts`: an older one is stale, the same time with the
same quote a duplicate; see `_by_time`). Polled quotes carry neither, so a
polled quote is delivered only if no streamed tick for that symbol arrived after the poll was
sent (it could be older than that tick), and only if it differs from the last delivered quote
(an exact repeat says nothing new).

This is also the edge where a tick must prove it is fit for consumers: a tick for a symbol
nobody subscribed, or with a price that is not finite and positive, or a crossed book (bid not
below ask), is rejected (`rejected(reason, tick)`: the feed counts it as malformed) and never
delivered.

The exchange's ids can go back: an exchange-side restart resets them, and one corrupt frame can
jump them forward so that every later one looks older. `ResetWatch` recognises that (ticks with
older ids, strictly increasing among themselves, still arriving after a second with nothing
newer) and the symbol continues from the new ids (`resynced(symbol, old, new)`, counted).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs

from foxtrot_stream.contract.model import Tick

_NONE = -1
_INF = math.inf

#: Older-id ticks start a new id sequence only once they have kept coming, with nothing newer
#: accepted in between, for this long (ns of receive time): two connections of one exchange (a
#: rotation's overlap) are never that far apart and interleave newer ticks; an id reset keeps
#: producing older ids for ever. Binance's book ticks carry no exchange time, so receive time
#: is what every adapter has.
RESYNC_AFTER_NS = 1_000_000_000
#: ... and only after this many of them, strictly increasing among themselves (one stray old
#: frame, or a burst read after a stalled loop, is not a new sequence).
RESYNC_RUN = 3

Consumer = Callable[[Tick], None]
"""Called on the feed's loop for every delivered tick; must not block."""


def _ignore(tick: Tick) -> None:
    """The default latency recorder: none."""


def _reraise(consumer: Consumer, exc: Exception) -> None:
    raise exc


def _drop(reason: str, tick: Tick) -> None:
    """The default for rejected ticks: dropped."""


def _quiet(symbol: str, old: tuple[int, int], new: tuple[int, int]) -> None:
    """The default resync report: none."""


class ResetWatch:
    """Recognises an exchange-side reset (or a one-off forward jump) of a symbol's ids.

    Fed the ticks (or frames) whose ids are older than the last accepted ones; says when to
    accept one as the start of a new sequence: a run of at least `RESYNC_RUN` of them, strictly
    increasing among themselves, that has lasted `RESYNC_AFTER_NS` of receive time, with
    nothing accepted in between (`anchor`, the last accepted ids, unchanged: a run that sees it
    change starts again). Pure; also used by adapters that keep merged per-symbol state (the
    Binance one does)."""

    __slots__ = ("_anchor", "_key", "_n", "_since")

    def __init__(self) -> None:
        self._anchor: object = None
        self._key: tuple[int, int] = (_NONE, _NONE)
        self._n = 0
        self._since = 0

    def older(self, anchor: object, key: tuple[int, int], received_ns: int) -> bool:
        """An older-id tick with ids `key` arrived at `received_ns`, `anchor` being the ids
        last accepted. True: accept this one, the first of a new sequence."""
        if self._n == 0 or anchor != self._anchor or key <= self._key:
            self._anchor, self._n, self._since = anchor, 0, received_ns
        self._key = key
        self._n += 1
        if self._n >= RESYNC_RUN and received_ns - self._since >= RESYNC_AFTER_NS:
            self._n = 0
            return True
        return False


@attrs.define(slots=True)
class _SymbolState:
    seq: int = _NONE
    trade_id: int = _NONE
    last_streamed: Tick | None = None
    """The last streamed tick delivered: its `received_ts` and, unless a polled quote came
    after it, the last delivered quote (read only by `polled()`, so no tuple per tick)."""
    streamed: int = 0
    """How many streamed ticks were delivered (coverage checks read the growth)."""
    polled_quote: tuple[float, float, float, float] | None = None
    """The last delivered polled quote, the last delivered quote while `streamed` is still
    `polled_at` (no streamed tick delivered since)."""
    polled_at: int = _NONE
    polled: int = 0
    """How many polled quotes were delivered."""
    polled_ns: int = 0
    duplicate: int = 0
    stale: int = 0
    resyncs: int = 0
    watch: ResetWatch | None = None
    newest_ts: int = _NONE
    """The newest exchange time delivered by stream, for exchanges without ids."""

    @property
    def streamed_ns(self) -> int:
        """When the last streamed tick was delivered (ns since the epoch), 0 before any."""
        last = self.last_streamed
        return 0 if last is None else last.received_ts

    @property
    def quote(self) -> tuple[float, float, float, float] | None:
        """The last delivered quote, streamed or polled."""
        if self.polled_at == self.streamed:
            return self.polled_quote
        last = self.last_streamed
        return None if last is None else (last.bid, last.bid_qty, last.ask, last.ask_qty)


@attrs.define(slots=True)
class SequencerCounts:
    delivered: int = 0
    duplicate: int = 0
    """Streamed ticks already delivered (a rotation's overlap, a replay)."""
    stale: int = 0
    """Streamed ticks older than one already delivered."""
    resyncs: int = 0
    polled_unchanged: int = 0
    """Polled quotes equal to the last delivered one (REST had nothing new): not delivered."""
    polled_superseded: int = 0
    """Polled quotes asked before the last streamed tick arrived (maybe older): not delivered."""
    rejected: int = 0
    """Ticks refused at the edge (implausible prices, symbol not subscribed)."""
    unsubscribed: int = 0
    """Ticks for a symbol after it was unsubscribed (in flight): dropped, not malformed."""


class Sequencer:
    """Filters ticks per symbol and hands the ones consumers may see to every consumer.

    Delivery is done here rather than by a callback to the feed: every WebSocket tick passes
    through `streamed`, and one Python call less per tick is measurable (benchmarks/README.md).

    Only symbols announced with `track` are delivered. `consumers` is the feed's live list
    (consumers added later are called too). `latency` gets each delivered tick that carries an
    exchange time (the metrics' latency sample). `consumer_failed(consumer, exc)` is told when
    a consumer raises; the tick still goes to the others. Its default re-raises. `rejected`
    gets ticks refused at the edge with the reason; `resynced` each id reset it recognised.
    """

    __slots__ = (
        "_gone",
        "_states",
        "consumer_failed",
        "consumers",
        "counts",
        "latency",
        "rejected",
        "resynced",
    )

    def __init__(
        self,
        consumers: list[Consumer],
        *,
        latency: Consumer = _ignore,
        consumer_failed: Callable[[Consumer, Exception], None] = _reraise,
        rejected: Callable[[str, Tick], None] = _drop,
        resynced: Callable[[str, tuple[int, int], tuple[int, int]], None] = _quiet,
    ) -> None:
        self.consumers = consumers
        self.latency = latency
        self.consumer_failed = consumer_failed
        self.rejected = rejected
        self.resynced = resynced
        self._states: dict[str, _SymbolState] = {}
        self._gone: set[str] = set()
        self.counts = SequencerCounts()

    # --- membership --------------------------------------------------------------------------

    def track(self, symbol: str) -> None:
        """Deliver `symbol` from now on (a subscribe); a symbol tracked again starts fresh."""
        self._states[symbol] = _SymbolState()
        self._gone.discard(symbol)

    def forget(self, symbol: str) -> None:
        """Stop delivering `symbol` (unsubscribed): ticks still in flight are dropped."""
        if self._states.pop(symbol, None) is not None:
            self._gone.add(symbol)

    def tracked(self, symbol: str) -> bool:
        return symbol in self._states

    @property
    def per_symbol(self) -> dict[str, SequencerCounts]:
        """symbol → its counts (a snapshot, built when asked: nothing per tick)."""
        return {
            symbol: SequencerCounts(
                state.streamed + state.polled, state.duplicate, state.stale, state.resyncs
            )
            for symbol, state in self._states.items()
        }

    # --- the two ways in ---------------------------------------------------------------------

    def streamed(self, tick: Tick) -> None:
        """A tick with an exchange sequence (WebSocket)."""
        # The hot path (every WebSocket tick): locals, no tuple, as few attribute writes as
        # the state needs (see benchmarks/README.md). The chained comparison rejects NaN,
        # infinities, non-positive prices and a crossed book in one go.
        try:
            state = self._states[tick.symbol]
        except KeyError:
            self._untracked(tick)
            return
        if not 0.0 < tick.bid < tick.ask < _INF:
            self._implausible(tick)
            return
        last_price = tick.last
        if last_price is not None and not 0.0 < last_price < _INF:
            self._implausible(tick)
            return
        seq = tick.seq
        if seq is None:
            if tick.trade_id is None:  # an exchange without ids: ordered by its time
                self._by_time(state, tick)
                return
            seq = _NONE
        trade_id = tick.trade_id
        if trade_id is None:
            trade_id = _NONE
        last = state.seq
        if (seq < last or (seq == last and trade_id <= state.trade_id)) and not self._older(
            state, tick, seq, trade_id
        ):
            return
        if state.polled_at == state.streamed and self._told(state, tick, trade_id):
            return
        state.seq = seq
        state.trade_id = trade_id
        state.last_streamed = tick
        state.streamed += 1
        self.counts.delivered += 1
        # `_deliver`, inlined: one call less per tick
        if tick.exchange_ts is not None:
            self.latency(tick)
        for consumer in self.consumers:
            try:
                consumer(tick)
            except Exception as exc:
                self.consumer_failed(consumer, exc)

    def polled(self, tick: Tick, requested_ns: int) -> bool:
        """A quote without sequence (REST), from a request sent at `requested_ns`.
        True if it was delivered (it shows a change nothing delivered before showed)."""
        state = self._states.get(tick.symbol)
        if state is None:
            self._untracked(tick)
            return False
        last_price = tick.last
        if not 0.0 < tick.bid < tick.ask < _INF or (
            last_price is not None and not 0.0 < last_price < _INF
        ):
            self._implausible(tick)
            return False
        if state.streamed_ns >= requested_ns:
            self.counts.polled_superseded += 1
            return False
        quote = (tick.bid, tick.bid_qty, tick.ask, tick.ask_qty)
        if quote == state.quote:
            self.counts.polled_unchanged += 1
            return False
        state.polled_quote = quote
        state.polled_at = state.streamed
        state.polled += 1
        state.polled_ns = tick.received_ts
        self.counts.delivered += 1
        self._deliver(tick)
        return True

    def _deliver(self, tick: Tick) -> None:
        # `streamed` has this inlined (the hot path); keep the two alike
        if tick.exchange_ts is not None:
            self.latency(tick)
        for consumer in self.consumers:
            try:
                consumer(tick)
            except Exception as exc:
                self.consumer_failed(consumer, exc)

    # --- off the hot path: drops, rejections, resyncs ------------------------------------------

    def _by_time(self, state: _SymbolState, tick: Tick) -> None:
        """A streamed tick without ids (`seq` and `trade_id` None): ordered by the exchange's
        time. Older than the last delivered one: stale; the same time and the same quote and
        last price: a duplicate; the same time with a different quote: a new update (exchanges
        stamp in milliseconds). Without an exchange time either, only an exact repeat of the
        last delivered quote is dropped."""
        quote = (tick.bid, tick.bid_qty, tick.ask, tick.ask_qty)
        previous = state.last_streamed
        ts = tick.exchange_ts
        if ts is not None and ts < state.newest_ts:
            self._count_drop(state, duplicate=False)
            return
        if previous is not None:
            previous_ts = previous.exchange_ts
            if (
                (ts is None or previous_ts is None or ts == previous_ts)
                and tick.last == previous.last
                and quote == (previous.bid, previous.bid_qty, previous.ask, previous.ask_qty)
            ):
                self._count_drop(state, duplicate=True)
                return
        if state.polled_at == state.streamed and state.polled_quote == quote:
            state.last_streamed = tick  # consumers have this quote from REST already
            self._count_drop(state, duplicate=True)
            return
        state.last_streamed = tick
        if ts is not None:
            state.newest_ts = ts
        state.streamed += 1
        self.counts.delivered += 1
        self._deliver(tick)

    def _older(self, state: _SymbolState, tick: Tick, seq: int, trade_id: int) -> bool:
        """`tick` is not newer than the last delivered: a duplicate, an older copy, or the
        start of a new id sequence (True: deliver it and continue from its ids)."""
        if seq == state.seq and trade_id == state.trade_id:
            self._count_drop(state, duplicate=True)
            return False
        watch = state.watch
        if watch is None:
            watch = state.watch = ResetWatch()
        if not watch.older((state.seq, state.trade_id), (seq, trade_id), tick.received_ts):
            self._count_drop(state, duplicate=False)
            return False
        state.resyncs += 1
        self.counts.resyncs += 1
        self.resynced(tick.symbol, (state.seq, state.trade_id), (seq, trade_id))
        return True

    def _told(self, state: _SymbolState, tick: Tick, trade_id: int) -> bool:
        """The last delivered quote came from REST: is this streamed tick the same update
        (same book, no new trade)? Then consumers have it already; its ids still become the
        symbol's, so what follows is ordered against them."""
        if state.polled_quote != (tick.bid, tick.bid_qty, tick.ask, tick.ask_qty):
            return False
        if trade_id != state.trade_id:
            return False
        state.seq = tick.seq if tick.seq is not None else _NONE
        state.last_streamed = tick  # the same quote; REST asked before it is not newer
        self._count_drop(state, duplicate=True)
        return True

    def _count_drop(self, state: _SymbolState, *, duplicate: bool) -> None:
        if duplicate:
            self.counts.duplicate += 1
            state.duplicate += 1
        else:
            self.counts.stale += 1
            state.stale += 1

    def _untracked(self, tick: Tick) -> None:
        if tick.symbol in self._gone:
            self.counts.unsubscribed += 1  # in flight when it was unsubscribed
            return
        self.counts.rejected += 1
        self.rejected(f"a tick for {tick.symbol!r}, which is not subscribed", tick)

    def _implausible(self, tick: Tick) -> None:
        self.counts.rejected += 1
        self.rejected(
            f"implausible prices for {tick.symbol}: bid {tick.bid!r}, ask {tick.ask!r}, "
            f"last {tick.last!r} (prices must be finite and positive, the bid below the ask)",
            tick,
        )

    # --- reading -------------------------------------------------------------------------------

    def streamed_count(self, symbol: str) -> int:
        """How many streamed ticks were delivered for `symbol`."""
        state = self._states.get(symbol)
        return state.streamed if state is not None else 0

    def delivered(self, symbol: str) -> tuple[int, int]:
        """(ticks delivered for `symbol` over any transport, when the last one arrived in ns):
        what the metrics count, read from here so that counting costs nothing per tick."""
        state = self._states.get(symbol)
        if state is None:
            return (0, 0)
        return (state.streamed + state.polled, max(state.streamed_ns, state.polled_ns))
