"""Deterministic, seedable price paths: the same seed gives the same quotes and trades."""

from __future__ import annotations

import hashlib
import random

import attrs


def _seed_for(seed: int, symbol: str) -> int:
    digest = hashlib.blake2b(f"{seed}:{symbol}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@attrs.define(slots=True)
class PricePath:
    """A random walk of one symbol's best bid/ask, with its update ids and trades."""

    symbol: str
    rng: random.Random
    mid: float
    tick_size: float
    update_id: int
    trade_id: int
    bid: float = 0.0
    bid_qty: float = 0.0
    ask: float = 0.0
    ask_qty: float = 0.0
    last: float = 0.0
    last_qty: float = 0.0

    @classmethod
    def create(cls, symbol: str, seed: int) -> PricePath:
        rng = random.Random(_seed_for(seed, symbol))
        mid = round(rng.uniform(1.0, 50_000.0), 2)
        tick = max(0.01, round(mid * 1e-5, 2))
        path = cls(symbol, rng, mid, tick, rng.randrange(1_000_000, 9_000_000), 1000)
        path._quote()
        path.last = path.bid
        path.last_qty = 1.0
        return path

    def _quote(self) -> None:
        spread = self.tick_size * self.rng.randint(1, 3)
        self.bid = round(self.mid - spread / 2, 8)
        self.ask = round(self.mid + spread / 2, 8)
        self.bid_qty = round(self.rng.uniform(0.01, 20.0), 4)
        self.ask_qty = round(self.rng.uniform(0.01, 20.0), 4)

    def step_book(self) -> None:
        """One order-book change: the update id grows by 1 or more (other levels changed too)."""
        self.mid = max(self.tick_size * 10, self.mid + self.tick_size * self.rng.randint(-3, 3))
        self._quote()
        self.update_id += self.rng.randint(1, 4)

    def step_trade(self) -> None:
        self.trade_id += 1
        self.last = self.bid if self.rng.random() < 0.5 else self.ask
        self.last_qty = round(self.rng.uniform(0.001, 5.0), 4)
