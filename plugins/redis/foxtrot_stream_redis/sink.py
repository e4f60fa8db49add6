"""`RedisSink`: publishes every tick a feed delivers to one Redis stream per symbol.

`put` runs on the feed's loop for every delivered tick and only appends to a bounded
`HandOff` (``drop_oldest``: while Redis is down or slow it holds `redis.buffer` ticks, then
drops the oldest waiting, counted). A writer task takes what waits, gives each tick its entry
id (`ids.StreamIds`) and writes `redis.batch` ticks per pipeline: one round trip per batch,
`XADD <key> MAXLEN ~ <maxlen> <id> field value …` each. A failed write is retried with a
growing wait until Redis answers again (counted: errors, reconnects); since every entry has an
explicit id, a retry of a write that had partly gone through only meets refusals.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from foxtrot_stream.contract.model import Tick
from foxtrot_stream.runtime.buffer import HandOff
from foxtrot_stream.util.redact import redact
from foxtrot_stream_redis.ids import StreamIds, stream_key
from foxtrot_stream_redis.settings import RedisSettings

log = logging.getLogger("foxtrot_stream_redis")

#: Redis's answer to an `XADD` whose explicit id is not above the stream's last id.
REFUSED = "equal or smaller"
FIRST_RETRY = 0.05
DOWN = (RedisConnectionError, RedisTimeoutError, OSError)


def _text(value: object) -> str:
    """A field value: None as the empty string, floats exactly (repr round-trips)."""
    return "" if value is None else repr(value) if isinstance(value, float) else str(value)


def entry(tick: Tick) -> dict[str, str]:
    """Every `Tick` field, as the stream entry's fields."""
    return {
        "adapter": tick.adapter,
        "symbol": tick.symbol,
        "bid": repr(tick.bid),
        "bid_qty": repr(tick.bid_qty),
        "ask": repr(tick.ask),
        "ask_qty": repr(tick.ask_qty),
        "last": _text(tick.last),
        "seq": _text(tick.seq),
        "trade_id": _text(tick.trade_id),
        "exchange_ts": _text(tick.exchange_ts),
        "received_ts": str(tick.received_ts),
        "transport": tick.transport.value,
    }


class RedisSink:
    """One feed's Redis Streams sink (the `Sink` protocol); see the module docstring."""

    name = "redis"

    def __init__(self, settings: RedisSettings, adapter: str) -> None:
        self.settings = settings
        self.adapter = adapter
        self._wake = asyncio.Event()
        self._queue = HandOff(settings.buffer, "drop_oldest", None, self._wake.set)
        self.put = self._queue.put
        """Hand a tick over (on the feed's loop): a deque append, nothing else."""
        self._ids = StreamIds()
        self._keys: dict[str, str] = {}
        self._client: aioredis.Redis | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._deadline: float | None = None
        self._inflight = 0
        self.connected = False
        self.written = 0
        self.duplicates = 0
        self.unplaced = 0
        """Ticks without an entry id (see `StreamIds.next`), not published."""
        self.refused = 0
        """Writes Redis refused for another reason than the id (counted as dropped too)."""
        self.lost = 0
        """Ticks dropped at stop (flush timed out) besides the buffer's own drops."""
        self.errors = 0
        self.reconnects = 0
        self._ever = False

    # --- the Sink protocol ---------------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        self._client = aioredis.Redis.from_url(
            s.url,
            socket_timeout=s.timeout,
            socket_connect_timeout=s.timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self._task = asyncio.create_task(self._run(), name=f"{self.adapter}-sink-redis")

    async def stop(self) -> None:
        """Write what is held within `redis.flush_timeout`; count the rest as dropped."""
        self._queue.close()  # a put from now on is dropped, counted
        self._closing = True
        self._deadline = time.monotonic() + self.settings.flush_timeout
        self._wake.set()
        task = self._task
        if task is not None:
            try:
                async with asyncio.timeout(self.settings.flush_timeout + self.settings.timeout):
                    await asyncio.shield(task)
            except TimeoutError:
                task.cancel()
                # the flush ran out of time and was cancelled: what it still held is counted
                # in `lost` just below, so nothing it raises on the way out changes the outcome
                with contextlib.suppress(BaseException):
                    await task
        _, _, queued = self._queue.counts()
        self.lost += queued + self._inflight
        self._inflight = 0
        if self._client is not None:
            with contextlib.suppress(Exception):  # stopping: a failing close loses nothing more
                await self._client.aclose()
        self.connected = False

    def health(self) -> dict[str, Any]:
        _, dropped, queued = self._queue.counts()
        return {
            "name": self.name,
            "url": redact(self.settings.url),
            "connected": self.connected,
            "written": self.written,
            "duplicates": self.duplicates,
            "dropped": dropped + self.lost + self.refused + self.unplaced,
            "queued": queued + self._inflight,
            "reconnects": self.reconnects,
            "errors": self.errors,
            "streams": len(self._keys),
        }

    # --- the writer ----------------------------------------------------------------------------

    async def _run(self) -> None:
        queue, wake = self._queue, self._wake
        size = self.settings.batch
        while True:
            batch = queue.take()
            if batch is None:
                if self._closing:
                    return
                wake.clear()
                await wake.wait()
                continue
            while chunk := list(itertools.islice(batch, size)):
                self._inflight = len(chunk)
                await self._write(self._entries(chunk))
                self._inflight = 0

    def _entries(self, ticks: list[Tick]) -> list[tuple[str, str, dict[str, str]]]:
        out = []
        keys, ids = self._keys, self._ids
        prefix = self.settings.key_prefix
        for tick in ticks:
            new = ids.next(tick)
            if new is None:
                self.unplaced += 1
                continue
            key = keys.get(tick.symbol)
            if key is None:
                key = keys[tick.symbol] = stream_key(prefix, tick.adapter, tick.symbol)
            out.append((key, f"{new[0]}-{new[1]}", entry(tick)))
        return out

    async def _write(self, entries: list[tuple[str, str, dict[str, str]]]) -> None:
        """One pipeline (one round trip) for `entries`, retried until Redis answers (or the
        stop's deadline passes: then they are counted as dropped)."""
        if not entries:
            return
        client = self._client
        assert client is not None
        maxlen = self.settings.maxlen
        wait = FIRST_RETRY
        while True:
            pipe = client.pipeline(transaction=False)
            for key, entry_id, fields in entries:
                pipe.xadd(key, fields, id=entry_id, maxlen=maxlen, approximate=True)  # type: ignore[arg-type]
            try:
                results = await pipe.execute(raise_on_error=False)  # resets the pipeline
            except DOWN as exc:
                self.errors += 1
                if self.connected or self.errors == 1:  # once per outage
                    log.warning("redis sink (%s): cannot write: %s", self.adapter, redact(str(exc)))
                self.connected = False
                deadline = self._deadline
                if deadline is not None and time.monotonic() + wait > deadline:
                    self.lost += len(entries)
                    self._inflight = 0
                    return
                await asyncio.sleep(wait)
                wait = min(wait * 2, self.settings.retry_max)
                continue
            break
        if not self.connected:
            if self._ever:  # it had written before: Redis is back
                self.reconnects += 1
                log.info("redis sink (%s): writing again", self.adapter)
            self.connected = True
            self._ever = True
        for result in results:
            if not isinstance(result, Exception):
                self.written += 1
            elif isinstance(result, ResponseError) and REFUSED in str(result):
                self.duplicates += 1
            else:
                self.refused += 1
                if self.refused == 1:
                    log.error("redis sink (%s): Redis refused an entry: %s", self.adapter, result)
