"""What recording one tick in `FeedMetrics` costs (the per-tick part of the metrics).

Ticks for 50 symbols, 75 % without an exchange time (bookTicker) and 25 % with one (trades),
as on the full path. Reported: ns per recorded tick, minus the same loop calling a no-op.
"""

from __future__ import annotations

import time

from foxtrot_stream.metrics import FeedMetrics
from foxtrot_stream.model import Tick, TransportKind

N = 400_000


def ticks(trade_every: int = 4) -> list[Tick]:
    """Ticks laid out in memory in the order they are recorded (as they are when they arrive):
    a list filtered from another one would measure cache misses, not `record`."""
    now = time.time_ns()
    out = []
    for i in range(N):
        symbol = f"SYM{i % 50}USDT"
        exchange_ms = now // 1_000_000 - 3 if i % trade_every == 0 else None
        fields = (symbol, 1.0, 1.0, 2.0, 1.0, None, i, None, exchange_ms, now + i)
        out.append(Tick("binance", *fields, TransportKind.WEBSOCKET))
    return out


def run(record: object, frames: list[Tick]) -> float:
    call = record
    start = time.perf_counter_ns()
    for tick in frames:
        call(tick)  # type: ignore[operator]
    return (time.perf_counter_ns() - start) / len(frames)


def main() -> None:
    frames = ticks()
    best_record = best_noop = float("inf")
    for _ in range(7):
        metrics = FeedMetrics()
        best_record = min(best_record, run(metrics.record, frames))
        best_noop = min(best_noop, run(lambda tick: None, frames))
    only_book = ticks(trade_every=N + 1)[1:]
    only_trade = ticks(trade_every=1)
    book = min(run(FeedMetrics().record, only_book) for _ in range(5))
    trade = min(run(FeedMetrics().record, only_trade) for _ in range(5))
    print(f"record(), mixed 75/25: {best_record:6.0f} ns/tick (a no-op call: {best_noop:.0f} ns)")
    print(f"  net of the call:     {best_record - best_noop:6.0f} ns/tick")
    print(f"  without exchange ts: {book:6.0f} ns/tick")
    print(f"  with exchange ts:    {trade:6.0f} ns/tick (latency sample + histogram bucket)")


if __name__ == "__main__":
    main()
