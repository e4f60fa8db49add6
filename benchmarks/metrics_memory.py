"""Bytes per symbol of the per-symbol metrics once their latency rings are full (what a long
run with trades reaches): `tracemalloc` around 2,000 symbols, each fed 2,000 trade ticks
through `FeedMetrics.record` (the per-tick path), with the 1 Hz sampling and the fold.

    uv run python benchmarks/metrics_memory.py
    old/checkout/.venv/bin/python benchmarks/metrics_memory.py   # the flat layout works too
"""

from __future__ import annotations

import time
import tracemalloc

try:
    from foxtrot_stream.contract.model import Tick, TransportKind
    from foxtrot_stream.runtime.metrics import FeedMetrics
except ImportError:  # before the core was laid out by its parts
    from foxtrot_stream.metrics import FeedMetrics  # type: ignore[no-redef]
    from foxtrot_stream.model import Tick, TransportKind  # type: ignore[no-redef]

SYMBOLS, TICKS = 2000, 2000


def main() -> None:
    now_ms = time.time_ns() // 1_000_000
    tracemalloc.start()
    metrics = FeedMetrics(lambda symbol: (0, 0))
    before = tracemalloc.get_traced_memory()[0]
    for s in range(SYMBOLS):
        name = f"S{s:04d}USDT"
        metrics.symbol(name)
        for i in range(TICKS):
            ts = now_ms + i
            metrics.record(
                Tick(
                    "binance",
                    name,
                    1.0,
                    1.0,
                    2.0,
                    1.0,
                    1.5,
                    None,
                    i,
                    ts,
                    ts * 1_000_000 + 40_000 + 7 * i,
                    TransportKind.WEBSOCKET,
                )
            )
    metrics.sample(list(metrics.symbols))
    after = tracemalloc.get_traced_memory()[0]
    per = (after - before) / SYMBOLS / 1024
    print(f"{per:.1f} KiB per symbol with full latency rings ({SYMBOLS} symbols x {TICKS} trades)")


if __name__ == "__main__":
    main()
