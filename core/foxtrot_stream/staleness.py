"""Per-symbol staleness: one symbol can go quiet on a busy connection, and a quiet market must
not cause false restarts.

Each symbol's usual gap between updates is learnt as an exponentially weighted mean; a symbol is
stale when its last update is older than `factor` times that gap, and never sooner than `floor`
seconds. Nothing is judged before `min_updates` updates have shown the symbol's pace. Pure: the
caller passes counts and times in and acts on the verdicts.
"""

from __future__ import annotations

import enum

import attrs


class Verdict(enum.Enum):
    FRESH = "fresh"
    STALE = "stale"
    """First time past the threshold: resubscribe it."""
    STILL_STALE = "still_stale"
    """Still stale one threshold after the resubscribe: serve it by HTTP polling alone."""
    RECOVERED = "recovered"
    """Updates again after having been stale."""


@attrs.define(slots=True)
class _Pace:
    count: int = 0
    last_change: float = 0.0
    mean_gap: float | None = None
    updates: int = 0
    stale_since: float | None = None
    escalated: bool = False


@attrs.define
class StalenessTracker:
    floor: float
    factor: float = 10.0
    alpha: float = 0.2
    min_updates: int = 3
    _paces: dict[str, _Pace] = attrs.field(factory=dict, init=False)

    def threshold(self, symbol: str) -> float | None:
        pace = self._paces.get(symbol)
        if pace is None or pace.mean_gap is None or pace.updates < self.min_updates:
            return None
        return max(self.floor, self.factor * pace.mean_gap)

    def observe(self, symbol: str, count: int, now: float) -> Verdict:
        """Feed the symbol's delivered-tick count at `now`; returns what to do about it."""
        pace = self._paces.get(symbol)
        if pace is None:
            self._paces[symbol] = _Pace(count, now)
            return Verdict.FRESH
        if count != pace.count:
            grew = count - pace.count
            if grew > 0:
                gap = (now - pace.last_change) / grew
                pace.mean_gap = (
                    gap
                    if pace.mean_gap is None
                    else (self.alpha * gap + (1 - self.alpha) * pace.mean_gap)
                )
                pace.updates += grew
            pace.count, pace.last_change = count, now
            if pace.stale_since is not None:
                pace.stale_since = None
                pace.escalated = False
                return Verdict.RECOVERED
            return Verdict.FRESH
        limit = self.threshold(symbol)
        if limit is None:
            return Verdict.FRESH
        if pace.stale_since is None:
            if now - pace.last_change > limit:
                pace.stale_since = now
                return Verdict.STALE
            return Verdict.FRESH
        if not pace.escalated and now - pace.stale_since > limit:
            pace.escalated = True
            return Verdict.STILL_STALE
        return Verdict.FRESH

    def age(self, symbol: str, now: float) -> float:
        pace = self._paces.get(symbol)
        return now - pace.last_change if pace is not None else 0.0

    def mean_gap(self, symbol: str) -> float | None:
        pace = self._paces.get(symbol)
        return pace.mean_gap if pace is not None else None

    def restart(self, symbol: str, now: float) -> None:
        """Forget the pause (a new connection, or the symbol just (re)joined)."""
        pace = self._paces.get(symbol)
        if pace is not None:
            pace.last_change = now
            pace.stale_since = None
            pace.escalated = False

    def forget(self, symbol: str) -> None:
        self._paces.pop(symbol, None)
