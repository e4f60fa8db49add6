"""Every symbol's price path and when it next updates.

Due times live in a timing wheel of `SLOT`-wide buckets rather than a heap or a sweep over
all symbols: with thousands of symbols at a few updates per second the publisher touches only
the symbols that are due, at O(1) each. A path keeps its exact due time, so rates are exact;
buckets only group the work.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from foxtrot_stream_binance.simulator.config import SimulatorConfig
from foxtrot_stream_binance.simulator.prices import PricePath

SLOT = 0.005
"""Width of a wheel bucket, in seconds."""
MAX_LAG = 1.0
"""A path more than this behind (the loop was blocked) skips ahead instead of bursting."""


class Market:
    """The exchange's state: deterministic per (seed, symbol); timing comes from the caller."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.trade_ratio = config.trade_ratio
        self.paths: dict[str, PricePath] = {
            s: PricePath.create(s, config.seed) for s in config.all_symbols()
        }
        self.by_stream_symbol = {s.lower(): p for s, p in self.paths.items()}
        self._wheel: dict[int, list[tuple[float, int, PricePath]]] = {}
        self._started = False
        for symbol, path in self.paths.items():
            rate = config.rate_of(symbol)
            path.interval = 1.0 / rate if rate > 0 else math.inf

    def start(self, now: float) -> None:
        """Schedule every path's first update within its first interval (phase from the seed)."""
        self._wheel = {}
        self._started = True
        for path in self.paths.values():
            if path.interval != math.inf:
                self._schedule(now + path.phase * path.interval, path)

    def _schedule(self, due: float, path: PricePath) -> None:
        slot = int(due / SLOT)
        bucket = self._wheel.get(slot)
        if bucket is None:
            self._wheel[slot] = [(due, path.generation, path)]
        else:
            bucket.append((due, path.generation, path))

    def set_rate(self, symbol: str, rate: float, now: float) -> None:
        """Change one symbol's update rate (0: silent) from now on."""
        if not (rate >= 0 and math.isfinite(rate)):
            raise ValueError(f"rate must be finite and >= 0, got {rate}")
        path = self.paths[symbol]
        path.generation += 1  # its scheduled entry, if any, is now stale
        path.interval = 1.0 / rate if rate > 0 else math.inf
        if self._started and rate > 0:
            self._schedule(now + path.interval, path)

    def next_due(self) -> float:
        """A lower bound on the next due time (the start of the first non-empty bucket)."""
        return min(self._wheel) * SLOT if self._wheel else math.inf

    def advance(self, now: float, now_us: int) -> Iterator[tuple[PricePath, bool]]:
        """Step every path due by `now`; yields (path, traded)."""
        wheel, ratio = self._wheel, self.trade_ratio
        last = int(now / SLOT)
        while wheel:
            slot = min(wheel)  # per bucket, not per update: a few hundred keys at most
            if slot > last:
                return
            bucket = wheel.pop(slot)
            later = [e for e in bucket if e[0] > now]  # only in the last bucket
            if len(later) == len(bucket):
                wheel.setdefault(slot, []).extend(later)
                return
            for due, generation, path in bucket:
                if due > now or generation != path.generation:
                    continue
                following = due + path.interval
                if following < now - MAX_LAG:
                    following = now + path.interval
                self._schedule(following, path)
                yield path, path.step(ratio, now_us)
            if later:
                wheel.setdefault(slot, []).extend(later)
