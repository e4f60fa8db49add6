"""What the metrics cost per tick: the check the sequencer makes on every tick it delivers and, for
ticks with an exchange time, `FeedMetrics.record` (tick counts cost nothing per tick: they are
the sequencer's own state).

Ticks for 50 symbols, 75 % without an exchange time (bookTicker) and 25 % with one (trades),
as on the full path. Reported: ns per tick, minus the same loop calling a no-op.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from foxtrot_stream.contract.model import Tick, TransportKind
from foxtrot_stream.runtime.metrics import FeedMetrics

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


def run(step: Callable[[Tick], None], frames: list[Tick]) -> float:
    start = time.perf_counter_ns()
    for tick in frames:
        step(tick)
    return (time.perf_counter_ns() - start) / len(frames)


def recorder() -> Callable[[Tick], None]:
    """What `Sequencer.streamed` does for the metrics, as a function of its own."""
    record = FeedMetrics(lambda symbol: (0, 0)).record

    def step(tick: Tick) -> None:
        if tick.exchange_ts is not None:
            record(tick)

    return step


def noop(tick: Tick) -> None:
    pass


def main() -> None:
    frames = ticks()
    only_trade = ticks(trade_every=1)
    mixed = min(run(recorder(), frames) for _ in range(7))
    trade = min(run(recorder(), only_trade) for _ in range(5))
    base = min(run(noop, frames) for _ in range(7))
    print(f"mixed 75/25: {mixed - base:5.0f} ns/tick ({mixed:.0f} with the call, no-op {base:.0f})")
    print(f"trade ticks: {trade - base:5.0f} ns/tick (one latency sample each)")


if __name__ == "__main__":
    main()
