"""`RedisSink`: publishes every tick a feed delivers to one Redis stream per symbol.

`put` runs on the feed's loop for every delivered tick and only appends to a bounded
`HandOff` (``drop_oldest``: while Redis is down or slow it holds `redis.buffer` ticks, then
drops the oldest waiting, counted). A writer task takes what waits, gives each tick its entry
id (`ids.StreamIds`) and writes `redis.batch` ticks per pipelined write: one round trip per
batch, `XADD <key> MAXLEN ~ <maxlen> <id> field value …` each (encoded by `wire.Encoder`,
sent on the sink's own `wire.Connection`). A failed write is retried with a
growing wait until Redis answers again (counted: errors, reconnects); since every entry has an
explicit id, a retry of a write that had partly gone through only meets refusals.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Sequence
from typing import Any

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from foxtrot_stream.contract.model import Tick
from foxtrot_stream.contract.records import Instrument
from foxtrot_stream.runtime.buffer import HandOff
from foxtrot_stream.util.redact import redact
from foxtrot_stream_redis.ids import StreamIds, instruments_json, instruments_key
from foxtrot_stream_redis.settings import RedisSettings
from foxtrot_stream_redis.wire import Connection, Encoder, command

log = logging.getLogger("foxtrot_stream_redis")

#: Redis's answer to an `XADD` whose explicit id is not above the stream's last id.
REFUSED = "equal or smaller"
FIRST_RETRY = 0.05
#: What "Redis is down" looks like: to the `redis` client (the source), to the sink's own
#: connection (OSError includes TimeoutError), or a reply stream that cannot be parsed.
DOWN = (RedisConnectionError, RedisTimeoutError, OSError, hiredis.ProtocolError)


def reraise_cancellation() -> None:
    """In an ``except DOWN`` that retries: if this task is being cancelled, end it. A client's
    read timeout (the `redis` client's own, or a socket's) can turn the cancellation arriving
    during a read into a TimeoutError, which is also "Redis is down": retried, the
    cancellation would be lost and whoever cancelled would wait for ever."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


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
        self._encoder = Encoder(settings.key_prefix, settings.maxlen)
        self._keys = self._encoder.keys
        self._conn = Connection(settings.url, settings.timeout)
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._deadline: float | None = None
        self._inflight = 0
        self._listing: bytes | None = None
        self.instruments_written = 0
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
        self._conn.close()
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
            listing, self._listing = self._listing, None
            if listing is not None and await self._send(listing, 1, ticks=0) is not None:
                self.instruments_written += 1
            batch = queue.take()
            if batch is None:
                if self._closing:
                    return
                wake.clear()
                await wake.wait()
                continue
            while chunk := list(itertools.islice(batch, size)):
                self._inflight = len(chunk)
                await self._write(self._commands(chunk))
                self._inflight = 0

    def _commands(self, ticks: list[Tick]) -> tuple[bytes, int]:
        """The `XADD` commands for `ticks` (one batch) and how many there are."""
        out = []
        ids, xadd = self._ids, self._encoder.xadd
        for tick in ticks:
            new = ids.next(tick)
            if new is None:
                self.unplaced += 1
                continue
            out.append(xadd(tick, f"{new[0]}-{new[1]}"))
        return "".join(out).encode(), len(out)

    async def _write(self, batch: tuple[bytes, int]) -> None:
        """One batch of `XADD`s, counted by what Redis answered to each."""
        data, count = batch
        results = await self._send(data, count, ticks=count) if count else None
        if results is None:
            return
        for result in results:
            if not isinstance(result, hiredis.ReplyError):
                self.written += 1
            elif REFUSED in str(result):
                self.duplicates += 1
            else:
                self.refused += 1
                if self.refused == 1:
                    log.error("redis sink (%s): Redis refused an entry: %s", self.adapter, result)

    async def _send(self, data: bytes, count: int, ticks: int) -> list[Any] | None:
        """One write (one round trip) of `count` commands, retried until Redis answers; None
        when the stop's deadline passed first (the `ticks` it carried are counted as lost)."""
        conn = self._conn
        wait = FIRST_RETRY
        while True:
            try:
                if not conn.is_open:
                    await conn.open()
                results = await conn.send(data, count)
            except DOWN as exc:
                reraise_cancellation()
                self.errors += 1
                if self.connected or self.errors == 1:  # once per outage
                    log.warning("redis sink (%s): cannot write: %s", self.adapter, redact(str(exc)))
                self.connected = False
                deadline = self._deadline
                if deadline is not None and time.monotonic() + wait > deadline:
                    self.lost += ticks
                    self._inflight = 0
                    return None
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
        return results

    def put_instruments(self, instruments: Sequence[Instrument]) -> None:
        """The `InstrumentSink` capability: the list goes to `<prefix>:instruments:{<adapter>}`
        (one JSON document, replaced whole; redundant feeds write the same) before the next
        batch."""
        self._listing = command("SET", instruments_key(self.settings.key_prefix, self.adapter),
                                instruments_json(instruments))  # fmt: skip
        self._wake.set()
