"""Sharding the feed tier: which of N feed processes serves a symbol.

A symbol belongs to shard ``blake2b(SYMBOL) mod N`` (the upper-case symbol's UTF-8 bytes, an
8-byte digest read big-endian): the same answer in every process, on every machine and in
every version of Python, unlike the built-in `hash` (salted per process). Run shard ``I/N``
for each ``I`` in ``0 … N-1`` and every symbol is streamed by exactly one of them; run each
twice (same ``I/N``, same Redis) for redundancy.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

import attrs

#: What a shard is written as: `I/N`, two whole numbers.
SHARD_FORM = "I/N with whole numbers 0 <= I < N (e.g. 0/2 and 1/2 for two shards)"
_TEXT = re.compile(r"^\s*(\d{1,6})\s*/\s*(\d{1,6})\s*$")


def shard_of(symbol: str, count: int) -> int:
    """The shard (0 to `count` - 1) that serves `symbol` (case does not matter)."""
    if count < 1:
        raise ValueError(f"expected a shard count of at least 1, got {count}")
    digest = hashlib.blake2b(symbol.upper().encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


@attrs.frozen
class Shard:
    """Shard `index` of `count` (`0/1`, the default, serves every symbol)."""

    index: int = 0
    count: int = 1

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"expected {SHARD_FORM}, got {self}")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def everything(self) -> bool:
        return self.count == 1

    def owns(self, symbol: str) -> bool:
        return self.count == 1 or shard_of(symbol, self.count) == self.index

    def select(self, symbols: Iterable[str]) -> list[str]:
        """The symbols of `symbols` this shard serves, in their order."""
        return [s for s in symbols if self.owns(s)]


def parse_shard(text: str) -> Shard:
    """`"1/4"` → `Shard(1, 4)`; a ValueError that says what is expected otherwise."""
    m = _TEXT.match(text)
    if m is None or not 0 <= int(m.group(1)) < int(m.group(2)):
        raise ValueError(f"expected {SHARD_FORM}, got {text!r}")
    return Shard(int(m.group(1)), int(m.group(2)))
