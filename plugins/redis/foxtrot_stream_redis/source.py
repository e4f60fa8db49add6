"""`RedisSource`: ticks read back from the streams the Redis sink writes (a host that consumes
from Redis instead of the exchange).

It reads with `XREAD` from the id after the last one it has seen on each stream, so after a
lost connection (or a restarted Redis) it resumes exactly: nothing skipped, nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from foxtrot_stream.contract.model import Tick, TransportKind
from foxtrot_stream.util.redact import redact
from foxtrot_stream_redis.ids import stream_key
from foxtrot_stream_redis.sink import DOWN, FIRST_RETRY

log = logging.getLogger("foxtrot_stream_redis")


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def tick_of(fields: Mapping[bytes, bytes] | Mapping[str, str]) -> Tick:
    """The `Tick` a stream entry carries (the inverse of `sink.entry`)."""
    f = {_str(k): _str(v) for k, v in fields.items()}

    def opt_int(name: str) -> int | None:
        return int(f[name]) if f.get(name) else None

    last = f.get("last")
    return Tick(
        f["adapter"],
        f["symbol"],
        float(f["bid"]),
        float(f["bid_qty"]),
        float(f["ask"]),
        float(f["ask_qty"]),
        float(last) if last else None,
        opt_int("seq"),
        opt_int("trade_id"),
        opt_int("exchange_ts"),
        int(f["received_ts"]),
        TransportKind(f["transport"]),
    )


class RedisSource:
    """Every tick of `symbols` of `adapter` from Redis, in each stream's order.

    `start` is ``"now"`` (ticks written from now on) or ``"oldest"`` (every entry the streams
    still hold first). `last_ids` (stream key → id) is where it is; pass one back to resume.
    """

    def __init__(
        self,
        url: str,
        adapter: str,
        symbols: Sequence[str],
        *,
        key_prefix: str = "ticks",
        start: str = "now",
        last_ids: Mapping[str, str] | None = None,
        block: float = 1.0,
        count: int = 1000,
        timeout: float = 2.0,
        retry_max: float = 1.0,
    ) -> None:
        if start not in ("now", "oldest"):
            raise ValueError(f"start {start!r}: expected 'now' or 'oldest'")
        self.url = url
        self.keys = [stream_key(key_prefix, adapter, s) for s in symbols]
        self.start = start
        self.last_ids: dict[str, str] = dict(last_ids or {})
        self.block = block
        self.count = count
        self.retry_max = retry_max
        self.read = 0
        self.errors = 0
        self.reconnects = 0
        self.connected = False
        self._client = aioredis.Redis.from_url(
            url,
            socket_timeout=block + timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )

    async def _positions(self) -> None:
        """Where each stream without a known position starts: its last entry now, or 0."""
        for key in self.keys:
            if key in self.last_ids:
                continue
            if self.start == "oldest":
                self.last_ids[key] = "0-0"
                continue
            top: Any = await self._client.xrevrange(key, count=1)
            self.last_ids[key] = _str(top[0][0]) if top else "0-0"

    async def ticks(self) -> AsyncIterator[Tick]:
        """Read for ever (until cancelled or `aclose`); a lost Redis is retried, counted."""
        wait = FIRST_RETRY
        ever = False
        while True:
            try:
                await self._positions()
                reply: Any = await self._client.xread(
                    streams=dict(self.last_ids),  # type: ignore[arg-type]
                    count=self.count,
                    block=max(1, int(self.block * 1000)),
                )
            except DOWN as exc:
                self.errors += 1
                if self.connected or self.errors == 1:
                    log.warning("redis source: cannot read: %s", redact(str(exc)))
                self.connected = False
                await asyncio.sleep(wait)
                wait = min(wait * 2, self.retry_max)
                continue
            if not self.connected:
                if ever:
                    self.reconnects += 1
                self.connected = ever = True
                wait = FIRST_RETRY
            for key, entries in reply or ():
                name = _str(key)
                for entry_id, fields in entries:
                    self.last_ids[name] = _str(entry_id)
                    self.read += 1
                    yield tick_of(fields)

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):  # closing a reader: nothing is left to lose
            await self._client.aclose()
