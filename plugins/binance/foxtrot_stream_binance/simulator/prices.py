"""Deterministic, seedable price paths: the same seed and symbol give the same quotes and trades.

Prices and quantities are integers in units of 1e-8, so the strings the streams and the REST
endpoints print are exact and identical for the same state.
"""

from __future__ import annotations

import hashlib

import attrs

UNIT = 100_000_000
"""1.0 in price/quantity units (Binance prints 8 decimals)."""
QTY_STEP = 10_000
"""0.0001: the quantity increment."""
_REFERENCE = {"BTCUSDT": 65_000.0, "ETHUSDT": 3_200.0, "BNBUSDT": 580.0, "SOLUSDT": 150.0}
_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _mix(x: int) -> int:
    """splitmix64's output function: a well-spread 64-bit value from a counter."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def fmt(units: int) -> str:
    """1e-8 units as Binance prints them: `"25.35190000"`."""
    return f"{units // UNIT}.{units % UNIT:08d}"


def _seed_for(seed: int, symbol: str) -> int:
    # Hashing (not Python's salted hash()) keeps a symbol's path independent of the other
    # symbols and identical across processes.
    digest = hashlib.blake2b(f"{seed}:{symbol}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _tick_for(price_units: int) -> int:
    """A power-of-ten tick giving about six significant digits, as real listings have."""
    return int(10 ** max(0, len(str(price_units)) - 7))


@attrs.define(slots=True)
class PricePath:
    """A random walk of one symbol's best bid/ask, with its book update ids and trades."""

    symbol: str
    state: int
    """The generator's counter: 8 bytes per path (a Mersenne Twister's 2.5 KB for thousands
    of symbols would not stay in cache)."""
    tick: int
    mid: int
    """Best bid, in ticks."""
    spread: int
    """Ask minus bid, in ticks."""
    bid_qty: int
    ask_qty: int
    update_id: int
    trade_id: int
    agg_id: int
    last_price: int
    last_qty: int
    trade_us: int = 0
    """Time of the last trade (µs since the epoch; 0 before the first)."""
    buyer_maker: bool = False
    phase: float = 0.0
    """Where in its first interval the path first updates (spreads thousands of symbols)."""
    interval: float = 0.0
    """Seconds between updates (inf: silent); kept by `Market`."""
    generation: int = 0
    """Bumped when the rate changes, so stale schedule entries are skipped."""
    streams: tuple[str, str, str] = ("", "", "")
    """Its `@bookTicker`, `@trade` and `@aggTrade` stream names."""

    @classmethod
    def create(cls, symbol: str, seed: int) -> PricePath:
        state = _seed_for(seed, symbol)
        draws = [_mix((state + i * _GOLDEN) & _MASK) for i in range(1, 6)]
        state = (state + 6 * _GOLDEN) & _MASK
        ref = _REFERENCE.get(symbol) or 10 ** (-2.0 + 6.5 * draws[0] / _MASK)
        price = int(ref * UNIT)
        tick = _tick_for(price)
        lower = symbol.lower()
        return cls(
            symbol=symbol,
            state=state,
            tick=tick,
            mid=max(price // tick, 100),
            spread=1,
            bid_qty=UNIT,
            ask_qty=UNIT,
            update_id=10**6 + draws[1] % (9 * 10**9),
            trade_id=10**5 + draws[2] % 10**9,
            agg_id=10**5 + draws[3] % 10**9,
            last_price=(max(price // tick, 100)) * tick,
            last_qty=UNIT,
            phase=draws[4] / (_MASK + 1),
            streams=(f"{lower}@bookTicker", f"{lower}@trade", f"{lower}@aggTrade"),
        )

    @property
    def bid(self) -> int:
        return self.mid * self.tick

    @property
    def ask(self) -> int:
        return (self.mid + self.spread) * self.tick

    def step(self, trade_ratio: float, now_us: int) -> bool:
        """One order-book change, and maybe a trade; True if it traded.

        The update id grows by 1 to 4 (deeper levels changed too), as on the exchange,
        where consecutive bookTicker `u` values are increasing but not contiguous.
        """
        self.state = x = (self.state + _GOLDEN) & _MASK
        r = _mix(x)
        self.mid = max(100, self.mid + (r & 7) % 7 - 3)
        self.spread = 1 + ((r >> 3) & 3) % 3
        self.bid_qty = QTY_STEP * (1 + ((r >> 5) & 0xFFFFF))
        self.ask_qty = QTY_STEP * (1 + ((r >> 25) & 0xFFFFF))
        self.update_id += 1 + ((r >> 62) & 3)
        if ((r >> 45) & 0xFFFF) >= trade_ratio * 0x10000:
            return False
        self.buyer_maker = bool((r >> 61) & 1)
        # a seller hitting the bid makes the buyer the maker
        self.last_price = self.bid if self.buyer_maker else self.ask
        self.last_qty = QTY_STEP * (1 + _mix(x ^ 0xD1B54A32D192ED03) % 50_000)
        self.trade_id += 1
        self.agg_id += 1
        self.trade_us = now_us
        return True

    def restart_ids(self) -> None:
        """Ids as after an exchange restart: the next update id is 1 to 4, the next trade 1."""
        self.update_id = self.trade_id = self.agg_id = 0

    def levels(self, n: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """The top `n` bids and asks; the best ones are the bookTicker's, deeper ones derived."""
        bids = [(self.bid, self.bid_qty)]
        asks = [(self.ask, self.ask_qty)]
        u = self.update_id
        for i in range(1, n):
            # a cheap deterministic hash of (update id, level): stable for one book state
            h = (u * 2_654_435_761 + i * 40_503) & 0xFFFFF
            if self.mid - i > 0:
                bids.append(((self.mid - i) * self.tick, QTY_STEP * (1 + h)))
            asks.append(((self.mid + self.spread + i) * self.tick, QTY_STEP * (1 + (h ^ 0x5A5A5))))
        return bids, asks
