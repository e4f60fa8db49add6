"""Per-symbol ordering: consumers never see a duplicate, or an older quote after a newer one.

Streamed ticks carry the exchange's book update id and trade id; a tick is delivered only if
``(seq, trade_id)`` is newer than the last delivered one. Polled quotes carry neither, so a
polled quote is delivered only if no streamed tick for that symbol arrived after the poll was
sent (it could be older than that tick), and only if it differs from the last delivered quote
(an exact repeat says nothing new).
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from foxtrot_stream.model import Tick

_NONE = -1

Consumer = Callable[[Tick], None]
"""Called on the feed's loop for every delivered tick; must not block."""


def _ignore(tick: Tick) -> None:
    """The default latency recorder: none."""


def _reraise(consumer: Consumer, exc: Exception) -> None:
    raise exc


@attrs.define(slots=True)
class _SymbolState:
    seq: int = _NONE
    trade_id: int = _NONE
    last_streamed: Tick | None = None
    """The last streamed tick delivered: its `received_ts` and, unless a polled quote came
    after it, the last delivered quote (read only by `polled()`, so no tuple per tick)."""
    streamed: int = 0
    """How many streamed ticks were delivered (staleness checks read the growth)."""
    polled_quote: tuple[float, float, float, float] | None = None
    """The last delivered polled quote, the last delivered quote while `streamed` is still
    `polled_at` (no streamed tick delivered since)."""
    polled_at: int = _NONE
    polled: int = 0
    """How many polled quotes were delivered."""
    polled_ns: int = 0
    duplicate: int = 0
    stale: int = 0

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
    stale: int = 0


class Sequencer:
    """Filters ticks per symbol and hands the ones consumers may see to every consumer.

    Delivery is done here rather than by a callback to the feed: every WebSocket tick passes
    through `streamed`, and one Python call less per tick is measurable (benchmarks/README.md).

    `consumers` is the feed's live list (consumers added later are called too). `latency`
    gets each delivered tick that carries an exchange time (the metrics' latency sample).
    `consumer_failed(consumer, exc)` is told when a consumer raises; the tick still goes to
    the others. Its default re-raises.
    """

    __slots__ = ("_states", "consumer_failed", "consumers", "counts", "latency")

    def __init__(
        self,
        consumers: list[Consumer],
        *,
        latency: Consumer = _ignore,
        consumer_failed: Callable[[Consumer, Exception], None] = _reraise,
    ) -> None:
        self.consumers = consumers
        self.latency = latency
        self.consumer_failed = consumer_failed
        self._states: dict[str, _SymbolState] = {}
        self.counts = SequencerCounts()

    @property
    def per_symbol(self) -> dict[str, SequencerCounts]:
        """symbol → its counts (a snapshot, built when asked: nothing per tick)."""
        return {
            symbol: SequencerCounts(state.streamed + state.polled, state.duplicate, state.stale)
            for symbol, state in self._states.items()
        }

    def _state(self, symbol: str) -> _SymbolState:
        state = self._states.get(symbol)
        if state is None:
            state = self._states[symbol] = _SymbolState()
        return state

    def streamed(self, tick: Tick) -> None:
        """A tick with an exchange sequence (WebSocket)."""
        # The hot path (every WebSocket tick): locals, no tuple, as few attribute writes as
        # the state needs (see benchmarks/README.md).
        symbol = tick.symbol
        try:
            state = self._states[symbol]
        except KeyError:
            state = self._state(symbol)
        seq = tick.seq
        if seq is None:
            seq = _NONE
        trade_id = tick.trade_id
        if trade_id is None:
            trade_id = _NONE
        last = state.seq
        if seq < last or (seq == last and trade_id <= state.trade_id):
            self._drop(symbol, duplicate=seq == last and trade_id == state.trade_id)
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

    def polled(self, tick: Tick, requested_ns: int) -> None:
        """A quote without sequence (REST), from a request sent at `requested_ns`."""
        state = self._state(tick.symbol)
        if state.streamed_ns >= requested_ns:
            self._drop(tick.symbol, duplicate=False)
            return
        quote = (tick.bid, tick.bid_qty, tick.ask, tick.ask_qty)
        if quote == state.quote:
            self._drop(tick.symbol, duplicate=True)
            return
        state.polled_quote = quote
        state.polled_at = state.streamed
        state.polled += 1
        state.polled_ns = tick.received_ts
        self.counts.delivered += 1
        self._deliver(tick)

    def _deliver(self, tick: Tick) -> None:
        # `streamed` has this inlined (the hot path); keep the two alike
        if tick.exchange_ts is not None:
            self.latency(tick)
        for consumer in self.consumers:
            try:
                consumer(tick)
            except Exception as exc:
                self.consumer_failed(consumer, exc)

    def _drop(self, symbol: str, *, duplicate: bool) -> None:
        state = self._states[symbol]
        if duplicate:
            self.counts.duplicate += 1
            state.duplicate += 1
        else:
            self.counts.stale += 1
            state.stale += 1

    def streamed_count(self, symbol: str) -> tuple[int, int]:
        """(streamed ticks delivered, when the last one arrived in ns) for `symbol`."""
        state = self._states.get(symbol)
        return (state.streamed, state.streamed_ns) if state is not None else (0, 0)

    def delivered(self, symbol: str) -> tuple[int, int]:
        """(ticks delivered for `symbol` over any transport, when the last one arrived in ns):
        what the metrics count, read from here so that counting costs nothing per tick."""
        state = self._states.get(symbol)
        if state is None:
            return (0, 0)
        return (state.streamed + state.polled, max(state.streamed_ns, state.polled_ns))

    def forget(self, symbol: str) -> None:
        """Drop a symbol's state (unsubscribed); a later subscribe starts fresh."""
        self._states.pop(symbol, None)
