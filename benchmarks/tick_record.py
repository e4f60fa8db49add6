"""What building one tick record costs: attrs frozen vs attrs slotted vs NamedTuple vs the
project's `Tick` (a frozen msgspec Struct, built in C).

Run: `uv run python benchmarks/tick_record.py`.
"""

from __future__ import annotations

import timeit
from typing import NamedTuple

import attrs

from foxtrot_stream.contract.model import Tick

FIELDS = ("binance", "BTCUSDT", 1.0, 2.0, 3.0, 4.0, None, 1, 2, None, 5, "websocket")


@attrs.define(slots=True)
class Slotted:
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
    transport: str


@attrs.frozen(slots=True)
class Frozen:
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
    transport: str


class Named(NamedTuple):
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
    transport: str


def main() -> None:
    n = 300_000
    classes: tuple[type, ...] = (Slotted, Frozen, Named, Tick)
    for cls in classes:

        def build(c: type = cls) -> object:
            return c(*FIELDS)

        ns = min(timeit.repeat(build, number=n, repeat=5)) / n * 1e9
        print(f"{cls.__name__:<8} {ns:6.0f} ns per record (including the call overhead)")


if __name__ == "__main__":
    main()
