"""Request weights and the weight limiter: what a REST request costs, and when it is refused.

Weights are the documented ones. Windows are fixed, as Binance's minute is: the used weight
counts up through a window and starts from zero in the next, and a 429's `Retry-After` is the
time left in the current one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from foxtrot_stream_binance.simulator.config import SimulatorConfig


class ApiError(Exception):
    """An error answer: `{"code": code, "msg": msg}` with an HTTP status."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


def retry_after(seconds: float) -> str:
    """Whole seconds, as Binance sends; only a test-scaled delay below 1 s keeps its fraction."""
    return f"{seconds:g}" if 0 < seconds < 1 else str(max(1, math.ceil(seconds)))


def depth_limit(query: Mapping[str, str]) -> int:
    raw = query.get("limit", "100")
    if not raw.isdigit() or int(raw) < 1:
        raise ApiError(
            -1100, "Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'."
        )
    return min(int(raw), 5000)


def _depth_weight(query: Mapping[str, str]) -> int:
    try:
        limit = depth_limit(query)
    except ApiError:
        return 5
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


def _ticker_weight(query: Mapping[str, str]) -> int:
    return 2 if "symbol" in query else 4


WEIGHTS: dict[str, Callable[[Mapping[str, str]], int]] = {
    "/api/v3/ping": lambda _q: 1,
    "/api/v3/time": lambda _q: 1,
    "/api/v3/exchangeInfo": lambda _q: 20,
    "/api/v3/ticker/bookTicker": _ticker_weight,
    "/api/v3/ticker/price": _ticker_weight,
    "/api/v3/depth": _depth_weight,
}


class WeightLimiter:
    """Request weight per fixed window; 429 beyond the limit; 418 (a ban) for ignoring 429s."""

    def __init__(self, config: SimulatorConfig, origin: float) -> None:
        self.limit, self.window = config.weight_limit, config.weight_window
        self.ban_after, self.ban_seconds = config.ban_after, config.ban_seconds
        self.origin = origin
        self.used = 0
        self.refused = 0
        self.banned_until = 0.0
        self._index = 0

    def roll(self, now: float) -> None:
        index = int((now - self.origin) // self.window)
        if index != self._index:
            self._index, self.used, self.refused = index, 0, 0

    def window_end(self) -> float:
        return self.origin + (self._index + 1) * self.window

    def charge(self, weight: int, now: float) -> tuple[int, float] | None:
        """None if the request may proceed, else (status, Retry-After seconds)."""
        self.roll(now)
        if now < self.banned_until:
            return 418, self.banned_until - now
        self.used += weight
        if self.used <= self.limit:
            return None
        self.refused += 1
        if self.refused > self.ban_after:
            self.banned_until = now + self.ban_seconds
            return 418, self.ban_seconds
        return 429, self.window_end() - now
