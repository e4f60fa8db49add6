"""Scripted faults: what a test (or `simulate --fault`) makes the simulator do wrong, and when.

Every fault is bounded in time or count and is read by the simulator on its own loop, so a
test sets one and awaits the feed's reaction; nothing here sleeps.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs


@attrs.define
class Faults:
    """Active faults. Times are `clock()` deadlines (monotonic seconds)."""

    clock: Callable[[], float] = time.monotonic
    refuse_until: float = 0.0
    """Upgrades answer HTTP 503 until then."""
    stall_until: float = 0.0
    """Connections stay open but get no data and no pings, and pongs are ignored."""
    silence_until: float = 0.0
    silence_symbols: frozenset[str] | None = None
    """No data (for these symbols, or all if None) until then; pings and pongs go on."""
    flap_until: float = 0.0
    """New connections get one frame and are dropped until then."""
    slow_rest_until: float = 0.0
    slow_rest_delay: float = 0.0
    rest_error_status: int = 0
    rest_error_count: int = 0
    rest_error_retry_after: float = 1.0
    malformed_pending: int = 0
    """Malformed frames still to send to every connection."""

    def refusing(self) -> bool:
        return self.clock() < self.refuse_until

    def stalled(self) -> bool:
        return self.clock() < self.stall_until

    def flapping(self) -> bool:
        return self.clock() < self.flap_until

    def silenced(self, symbol: str) -> bool:
        if self.clock() >= self.silence_until:
            return False
        return self.silence_symbols is None or symbol in self.silence_symbols

    def rest_delay(self) -> float:
        return self.slow_rest_delay if self.clock() < self.slow_rest_until else 0.0

    def take_rest_error(self) -> int:
        if self.rest_error_count <= 0:
            return 0
        self.rest_error_count -= 1
        return self.rest_error_status

    def clear(self) -> None:
        self.refuse_until = self.stall_until = self.silence_until = 0.0
        self.flap_until = self.slow_rest_until = 0.0
        self.silence_symbols = None
        self.rest_error_count = 0
        self.malformed_pending = 0


#: Frames that a real exchange should never send, one of each kind the decoder must survive.
MALFORMED_FRAMES: tuple[str, ...] = (
    "{not json",
    '{"stream":"btcusdt@bookTicker","data":{"u":"x","s":"BTCUSDT","b":1,"B":"1","a":"1","A":"1"}}',
    '{"stream":"btcusdt@bookTicker","data":{"u":1,"s":"BTCUSDT"}}',
    '{"stream":"nosuch@thing","data":{"x":1}}',
    '{"code":-1,"msg":"unexpected error object"}',
    "[1,2,3]",
)
