"""The records consumers see. Frozen and slotted: built once per frame, never mutated."""

from __future__ import annotations

import enum

import msgspec


class TransportKind(enum.StrEnum):
    """Which transport delivered a tick (also the value printed in `run --format jsonl`)."""

    WEBSOCKET = "websocket"
    HTTP = "http"


class Tick(msgspec.Struct, frozen=True, gc=False):
    """Best bid/ask (and last trade price where known) for one symbol at one moment.

    Immutable: the same object goes to every consumer. A msgspec `Struct` rather than an attrs
    class because it is built in C: a frozen one costs about 0.2 µs against 0.55 µs for attrs'
    slotted, mutable class and 1.6 µs for attrs' frozen one (`benchmarks/tick_record.py`),
    on a path that builds one per frame. `gc=False`: its fields are numbers, strings and an
    enum, so it can never be part of a reference cycle and the collector need not track it.
    Build it positionally or by keyword; `msgspec.structs.replace(tick, bid=...)` gives a
    changed copy.

    Prices are floats, as in vnpy/Foxtrot `TickData`: the Binance decode benchmark
    (`benchmarks/decode.py`) shows what Decimal would cost per frame.

    `seq` is the exchange's book update id (Binance `u`), `trade_id` the id of the trade that
    set `last`; either is None where the source has none (REST quotes have neither).
    `exchange_ts` is the exchange's event time in ms where the source has one, `received_ts`
    the local receive time in ns since the epoch.
    """

    adapter: str
    symbol: str
    bid: float
    bid_qty: float
    ask: float
    ask_qty: float
    last: float | None
    seq: int | None
    trade_id: int | None
    exchange_ts: int | None
    received_ts: int
    transport: TransportKind

    def to_json_dict(self) -> dict[str, object]:
        """The `run --format jsonl` object: plain JSON types only."""
        return {
            "adapter": self.adapter,
            "symbol": self.symbol,
            "bid": self.bid,
            "bid_qty": self.bid_qty,
            "ask": self.ask,
            "ask_qty": self.ask_qty,
            "last": self.last,
            "seq": self.seq,
            "trade_id": self.trade_id,
            "exchange_ts": self.exchange_ts,
            "received_ts": self.received_ts,
            "transport": self.transport.value,
        }
