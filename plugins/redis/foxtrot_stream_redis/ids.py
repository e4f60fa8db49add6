"""Stream entry ids from the ticks' own ordering: how redundant feeds publish each tick once.

A Redis stream accepts an explicit entry id only if it is greater than the stream's last id
(`XADD` refuses an equal or smaller one, atomically, and remembers the last id even after
trimming). So if every feed derives a tick's id from what identifies the tick at the exchange,
two feeds publishing the same symbol write each tick once: the second `XADD` of the same tick
is refused, and so is any tick older than one already in the stream. The stream is in the
exchange's order whichever feed was first.

An id is two unsigned 64-bit numbers ``<ms>-<seq>``, compared in that order. The rule, for a
tick of one symbol (one stream), with ``S = 16``:

* **exchange ids** (``seq`` or ``trade_id`` set; Binance: the book update id ``u`` and the
  trade id): ``<seq + 1>-<(trade_id + 1) << S>``, a missing id counting as -1. This is the
  order the feed's sequencer delivers in (``(seq, trade_id)``, lexicographic), shifted by one
  so that no id is ``0-0``. The first part is then not a time: read ``received_ts`` and
  ``exchange_ts`` from the entry.
* **exchange time only** (both ids None, ``exchange_ts`` set): ``<exchange_ts>-<n << S>``,
  ``n`` counting the ticks delivered before it with the same exchange time (0 for the first).
  Two feeds agree when they delivered the same ticks for that millisecond; if one missed one,
  a later tick of that same millisecond may appear twice (never out of order).
* **neither** (polled REST quotes, which have no exchange identity): the id right after the
  last one this feed gave the symbol: ``<ms>-<seq + 1>`` (up to ``2**S - 1`` such quotes
  between two streamed ticks; further ones are not published until the next streamed tick).
  Redundant feeds that poll at once compete for the same ids: one quote per slot goes in (the
  others are refused, counted as duplicates), still in order. A quote polled before the
  symbol's first streamed tick takes ``0-<n>``: it goes into a new stream only.

A refused `XADD` costs Redis one id comparison and an error reply; nothing is stored.

Limit: after an exchange-side reset of its ids (the sequencer's resync) the new ids are all
older than the stream's last, and are refused until they overtake it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import attrs

from foxtrot_stream.contract.model import Tick
from foxtrot_stream.contract.records import Instrument

SHIFT = 16
SUB_MAX = (1 << SHIFT) - 1
U64 = (1 << 64) - 1


def stream_key(prefix: str, adapter: str, symbol: str) -> str:
    """``ticks:{binance:BTCUSDT}``: the hash tag keeps one symbol's stream on one Cluster node
    (and lets a consumer read several streams of one symbol in one command)."""
    return f"{prefix}:{{{adapter}:{symbol}}}"


def instruments_key(prefix: str, adapter: str) -> str:
    """``ticks:instruments:{binance}``: the adapter's instrument list (one JSON document)."""
    return f"{prefix}:instruments:{{{adapter}}}"


def instruments_json(instruments: Sequence[Instrument]) -> str:
    return json.dumps([attrs.asdict(i) for i in instruments], separators=(",", ":"))


def instruments_of(text: str | bytes) -> tuple[Instrument, ...]:
    """The inverse of `instruments_json`; ValueError for a document that is not one."""
    try:
        return tuple(Instrument(**item) for item in json.loads(text))
    except (TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not an instrument list: {exc}") from None


def parse_id(text: str | bytes) -> tuple[int, int]:
    if isinstance(text, bytes):
        text = text.decode()
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


class StreamIds:
    """The id of each tick of each symbol, in delivery order (keeps one id per symbol)."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: dict[str, tuple[int, int]] = {}

    def next(self, tick: Tick) -> tuple[int, int] | None:
        """The entry id of `tick`, or None if it has none (a 65,536th polled quote in a row,
        or ids beyond 64 bits)."""
        seq, trade_id = tick.seq, tick.trade_id
        last = self._last.get(tick.symbol)
        if seq is not None or trade_id is not None:
            new = (
                0 if seq is None else seq + 1,
                0 if trade_id is None else (trade_id + 1) << SHIFT,
            )
        elif tick.exchange_ts is not None and tick.transport == "websocket":
            ts = tick.exchange_ts
            if last is not None and last[0] == ts:
                new = (ts, ((last[1] >> SHIFT) + 1) << SHIFT)
            else:
                new = (ts, 0)
        elif last is None:
            new = (0, 1)
        else:
            if last[1] & SUB_MAX == SUB_MAX:
                return None
            new = (last[0], last[1] + 1)
        if new[0] > U64 or new[1] > U64 or new < (0, 1):
            return None
        self._last[tick.symbol] = new
        return new
