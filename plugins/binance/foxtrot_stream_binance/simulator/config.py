"""How a simulator is set up: symbols, rates, timings and the limits it enforces."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

LOOPBACK = "127.0.0.1"
DEFAULT_SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT")
SYMBOL = re.compile(r"^[A-Z0-9]{2,20}$")
STATUSES = ("TRADING", "HALT", "BREAK")


def synthetic_symbols(n: int) -> tuple[str, ...]:
    """N distinct symbols (`S0000USDT`, …) for load tests with thousands of symbols."""
    width = max(4, len(str(max(n - 1, 0))))
    return tuple(f"S{i:0{width}d}USDT" for i in range(n))


def _symbols(value: Iterable[str]) -> tuple[str, ...]:
    # dict.fromkeys: drop repeats but keep the caller's order (it is the exchangeInfo order)
    return tuple(dict.fromkeys(s.upper() for s in value))


def _check_symbols(_inst: Any, _attr: Any, value: tuple[str, ...]) -> None:
    bad = [s for s in value if not SYMBOL.match(s)]
    if bad:
        raise ValueError(f"symbols must be 2-20 letters or digits, got {bad[:3]}")


def _upper_keys(value: Mapping[str, Any]) -> dict[str, Any]:
    return {k.upper(): v for k, v in value.items()}


def _check_rates(_inst: Any, _attr: Any, value: Mapping[str, float]) -> None:
    bad = {k: v for k, v in value.items() if not (v >= 0 and math.isfinite(v))}
    if bad:
        raise ValueError(f"per-symbol rates must be finite and >= 0, got {bad}")


def _check_statuses(_inst: Any, _attr: Any, value: Mapping[str, str]) -> None:
    bad = {k: v for k, v in value.items() if v not in STATUSES}
    if bad:
        raise ValueError(f"statuses must be one of {STATUSES}, got {bad}")


def _positive(_inst: Any, attr: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attr.name} must be > 0, got {value!r}")


def _non_negative(_inst: Any, attr: attrs.Attribute[Any], value: float) -> None:
    if not value >= 0:
        raise ValueError(f"{attr.name} must be >= 0, got {value!r}")


def _at_most(bound: float) -> Any:
    def check(_inst: Any, attr: attrs.Attribute[Any], value: float) -> None:
        if not value <= bound:
            raise ValueError(f"{attr.name} must be <= {bound}, got {value!r}")

    return check


@attrs.frozen
class SimulatorConfig:
    """Everything is scaled for production by default; tests shrink the timings."""

    symbols: tuple[str, ...] = attrs.field(
        default=DEFAULT_SYMBOLS, converter=_symbols, validator=_check_symbols
    )
    synthetic: int = attrs.field(default=0, validator=_non_negative)
    """Synthetic symbols added after `symbols` (`synthetic_symbols(n)`)."""
    rate: float = attrs.field(default=10.0, validator=_non_negative)
    """Book updates per second per symbol."""
    rates: Mapping[str, float] = attrs.field(
        factory=dict, converter=_upper_keys, validator=_check_rates, hash=False
    )
    """Per-symbol overrides of `rate`: a small value makes a quiet symbol, 0 a silent one."""
    statuses: Mapping[str, str] = attrs.field(
        factory=dict, converter=_upper_keys, validator=_check_statuses, hash=False
    )
    """`exchangeInfo` status per symbol (default TRADING); a symbol not trading never updates."""
    trade_ratio: float = attrs.field(default=0.3, validator=[_non_negative, _at_most(1)])
    """Probability that a book update comes with a trade."""
    seed: int = 1
    port: int = attrs.field(default=0, validator=[_non_negative, _at_most(65535)])
    """0: an ephemeral port, read back from `Simulator.port`."""
    ping_interval: float = attrs.field(default=20.0, validator=_positive)
    pong_timeout: float = attrs.field(default=60.0, validator=_positive)
    lifetime: float = attrs.field(default=24 * 3600.0, validator=_positive)
    """Seconds a WebSocket connection may live (Binance: 24 h)."""
    max_streams: int = attrs.field(default=1024, validator=_positive)
    incoming_limit: int = attrs.field(default=5, validator=_positive)
    """Incoming messages (text, ping, pong) allowed per `incoming_window` per connection."""
    incoming_window: float = attrs.field(default=1.0, validator=_positive)
    attempt_limit: int = attrs.field(default=300, validator=_non_negative)
    """WebSocket connection attempts allowed per `attempt_window` (0: unlimited)."""
    attempt_window: float = attrs.field(default=300.0, validator=_positive)
    weight_limit: int = attrs.field(default=6000, validator=_positive)
    """REST request weight allowed per `weight_window` (advertised in `exchangeInfo`)."""
    weight_window: float = attrs.field(default=60.0, validator=_positive)
    ban_after: int = attrs.field(default=3, validator=_non_negative)
    """Requests answered 429 in one window before the IP is banned (418)."""
    ban_seconds: float = attrs.field(default=120.0, validator=_positive)
    shutdown_grace: float = attrs.field(default=1.0, validator=_non_negative)
    """Seconds between a `serverShutdown` event and the close."""
    tick_interval: float = attrs.field(default=0.005, validator=_positive)
    """Shortest sleep of the publisher: updates due in between are sent together."""
    close_timeout: float = attrs.field(default=1.0, validator=_positive)
    """How long a close waits for the client's close frame before cutting the connection."""
    max_outbox: int = attrs.field(default=100_000, validator=_positive)
    clock_offset: float = 0.0
    """Seconds the simulated exchange's clock runs ahead of the local one (negative: behind):
    event times and `/api/v3/time` are shifted by it, as with a real exchange's skewed clock."""

    def now_us(self) -> int:
        """The simulated exchange's clock, in µs since the epoch."""
        return time.time_ns() // 1000 + int(self.clock_offset * 1e6)

    """Frames queued for one connection before it is dropped as a slow consumer."""

    def all_symbols(self) -> tuple[str, ...]:
        if not self.synthetic:
            return self.symbols
        return _symbols(self.symbols + synthetic_symbols(self.synthetic))

    def rate_of(self, symbol: str) -> float:
        if self.statuses.get(symbol, "TRADING") != "TRADING":
            return 0.0
        return float(self.rates.get(symbol, self.rate))
