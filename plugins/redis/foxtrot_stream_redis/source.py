"""`RedisSource`: ticks read back from the streams the Redis sink writes (`foxtrot-stream tail
redis://…`, and hosts with ``redis.consume``), the `Source` of this plugin.

Two ways to read:

* **Every reader gets every entry** (no group; `XREAD`): it reads from the id after the last
  one it has seen on each stream, so after a lost connection (or a restarted Redis) it resumes
  exactly: nothing skipped, nothing twice.
* **Work sharing** (`group`, `consumer`; `XREADGROUP … >`): the readers of one consumer group
  share the entries, each entry to one of them. The group is created on each stream if missing
  (`MKSTREAM`), at the stream's end for ``start="now"``, at its beginning for ``"oldest"``. An
  entry is acknowledged (`XACK`) once handed on: yielded by `ticks()` (acknowledged in one go
  before the next read, and by `aclose`). On every (re)start, and after every lost connection,
  the reader first re-reads its own pending entries (id 0: given to it, not acknowledged) and
  hands on those it had not handed on yet, so nothing is lost; a reader that keeps its
  `consumer` name across restarts resumes without a gap, and without repeating what it had
  acknowledged. At least once: a process that dies between handing a tick on and the next
  acknowledgement gets those entries again when it comes back under the same name. Entries of
  a reader that does not come back are taken over by a live one once they have waited
  `claim_after` seconds unacknowledged (`XAUTOCLAIM`, `redis.claim_after`; 0: never); they
  are older than what the taker had read, so across a take-over a stream's order holds per
  consumer only, as in any work sharing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError

from foxtrot_stream.contract.model import Tick, TransportKind
from foxtrot_stream.contract.records import Instrument
from foxtrot_stream.util.redact import redact
from foxtrot_stream_redis.ids import instruments_key, instruments_of, parse_id, stream_key
from foxtrot_stream_redis.sink import DOWN, FIRST_RETRY, reraise_cancellation

log = logging.getLogger("foxtrot_stream_redis")

#: An `XREAD`/`XREADGROUP` answer (RESP2): [(stream key, [(entry id, fields), …]), …].
Reply = Any


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
    """Every tick of `symbols` of `adapter` from Redis, in each stream's order (see the module
    docstring for the two ways to read).

    `start` is ``"now"`` (ticks written from now on) or ``"oldest"`` (every entry the streams
    still hold first). `last_ids` (stream key → id) is where it is; pass one back to resume
    (without a group).
    """

    name = "redis"

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
        group: str | None = None,
        consumer: str | None = None,
        claim_after: float = 0.0,
    ) -> None:
        if start not in ("now", "oldest"):
            raise ValueError(f"start {start!r}: expected 'now' or 'oldest'")
        if consumer and not group:
            raise ValueError(f"consumer {consumer!r} without a group: name the group too")
        self.url = url
        self.adapter = adapter
        self.key_prefix = key_prefix
        self.start = start
        self.group = group or None
        self.consumer = consumer or socket.gethostname()
        self.claim_after = claim_after
        self.claimed = 0
        self._next_claim = 0.0
        self.last_ids: dict[str, str] = dict(last_ids or {})
        self.block = block
        self.count = count
        self.retry_max = retry_max
        self.read = 0
        self.acked = 0
        self.malformed = 0
        self.errors = 0
        self.reconnects = 0
        self.connected = False
        self._keys: dict[str, str] = {}  # symbol → stream key
        self._changed = asyncio.Event()
        self._fresh = True  # (group) create the groups and re-read the pending entries first
        self._backlog: dict[str, str] | None = None  # (group) pending entries still to re-read
        self._handed: dict[str, list[str]] = {}  # (group) handed on, not yet acknowledged
        self.add(symbols)
        self._client = aioredis.Redis.from_url(
            url,
            socket_timeout=block + timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )

    # --- the Source protocol ---------------------------------------------------------------

    @property
    def keys(self) -> list[str]:
        return list(self._keys.values())

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset(self._keys)

    def add(self, symbols: Sequence[str]) -> None:
        new = [s for s in symbols if s not in self._keys]
        for s in new:
            self._keys[s] = stream_key(self.key_prefix, self.adapter, s)
        if new:
            self._fresh = True
            self._changed.set()

    def remove(self, symbols: Sequence[str]) -> None:
        for s in symbols:
            key = self._keys.pop(s, None)
            if key is not None and self.group is None:
                self.last_ids.pop(key, None)  # subscribed again later: from `start` again

    async def instruments(self, wait: float = 30.0) -> tuple[Instrument, ...]:
        """The `InstrumentSource` capability: the list the publishing feeds' sinks wrote
        (`<prefix>:instruments:{<adapter>}`), waiting up to `wait` seconds for it to appear
        (a host may start before the feed tier); LookupError if it does not."""
        key = instruments_key(self.key_prefix, self.adapter)
        deadline = time.monotonic() + wait
        pause = FIRST_RETRY
        why = "not published yet"
        while True:
            try:
                text: Any = await self._client.get(key)
            except DOWN as exc:
                reraise_cancellation()
                why = f"cannot read it: {redact(str(exc))}"
            else:
                if text is not None:
                    return instruments_of(text)
            if time.monotonic() + pause > deadline:
                raise LookupError(f"no instrument list at {key} in {redact(self.url)}: {why}")
            await asyncio.sleep(pause)
            pause = min(pause * 2, self.retry_max)

    def health(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "url": redact(self.url),
            "connected": self.connected,
            "read": self.read,
            "reconnects": self.reconnects,
            "errors": self.errors,
            "malformed": self.malformed,
            "streams": len(self._keys),
        }
        if self.group is not None:
            out |= {"group": self.group, "consumer": self.consumer, "acked": self.acked,
                    "claimed": self.claimed}  # fmt: skip
        return out

    async def ticks(self) -> AsyncIterator[Tick]:
        """Read for ever (until cancelled or `aclose`); a lost Redis is retried, counted."""
        wait = FIRST_RETRY
        ever = False
        while True:
            # a cancellation can get lost inside the client library during a blocking read
            # (seen: the task stays "cancelling" and the reads go on); honour it here, at the
            # latest one read (`block`) later
            reraise_cancellation()
            if not self._keys:
                self._changed.clear()
                await self._changed.wait()
                continue
            try:
                claimed = False
                if self.group is None:
                    await self._positions()
                    reply: Reply = await self._client.xread(
                        streams=dict(self.last_ids),  # type: ignore[arg-type]
                        count=self.count,
                        block=max(1, int(self.block * 1000)),
                    )
                else:
                    reply, claimed = await self._read_group()
            except (*DOWN, ResponseError) as exc:  # ResponseError: NOGROUP, Redis lost the group
                reraise_cancellation()
                self._down(str(exc))
                await asyncio.sleep(wait)
                wait = min(wait * 2, self.retry_max)
                continue
            if not self.connected:
                if ever:
                    self.reconnects += 1
                    log.info("redis source: reading again")
                self.connected = ever = True
                wait = FIRST_RETRY
            backlog = self._backlog is not None
            for key, entries in reply or ():
                name = _str(key)
                handed = self._handed.setdefault(name, [])
                for entry_id, fields in entries:
                    eid = _str(entry_id)
                    if claimed:  # another consumer's, older than ours: handed on, no position
                        handed.append(eid)
                        if not fields:  # trimmed away meanwhile
                            continue
                    else:
                        if backlog:
                            self._backlog[name] = eid  # type: ignore[index]
                            seen = self.last_ids.get(name)
                            if not fields or (seen is not None and parse_id(eid) <= parse_id(seen)):
                                handed.append(eid)  # trimmed, or handed on before the outage
                                continue
                        self.last_ids[name] = eid
                        if self.group is not None:
                            handed.append(eid)  # yielded: handed on (acknowledged next read)
                    try:
                        tick = tick_of(fields)
                    except (KeyError, ValueError) as exc:  # not an entry the sink wrote
                        self.malformed += 1
                        if self.malformed == 1:  # once: a foreign writer must not flood the log
                            log.error("redis source: %s %s is not a tick: %r", name, eid, exc)
                        continue
                    self.read += 1
                    yield tick

    async def aclose(self) -> None:
        if self.group is not None:
            # best effort: what is not acknowledged now is re-read by this consumer's next
            # start (at least once), so a failure here loses nothing
            with contextlib.suppress(Exception):
                await self._ack()
        with contextlib.suppress(Exception):  # closing a reader: nothing is left to lose
            await self._client.aclose()

    # --- reading ---------------------------------------------------------------------------

    def _down(self, why: str) -> None:
        self.errors += 1
        if self.connected or self.errors == 1:  # once per outage
            log.warning("redis source: cannot read: %s", redact(why))
        self.connected = False
        self._fresh = True  # (group) re-read the pending entries once back

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

    async def _read_group(self) -> tuple[Reply, bool]:
        """The next entries for this consumer, and whether they were claimed from another."""
        group, client = self.group, self._client
        assert group is not None
        await self._ack()
        if self._fresh:
            for key in self.keys:
                try:
                    await client.xgroup_create(
                        key, group, id="$" if self.start == "now" else "0", mkstream=True
                    )
                except ResponseError as exc:
                    if "BUSYGROUP" not in str(exc):  # BUSYGROUP: it exists, as wanted
                        raise
            self._backlog = dict.fromkeys(self.keys, "0")
            self._fresh = False
        if self._backlog is not None:
            streams = {k: v for k, v in self._backlog.items() if k in self._keys.values()}
            reply: Reply = await client.xreadgroup(
                group,
                self.consumer,
                streams,  # type: ignore[arg-type]
                count=self.count,
            )
            if any(entries for _, entries in reply or ()):
                return reply, False
            self._backlog = None  # every pending entry re-read: new ones from now on
        if self.claim_after > 0 and time.monotonic() >= self._next_claim:
            claimed = await self._claim()
            if claimed:
                return claimed, True
            self._next_claim = time.monotonic() + self.claim_after / 2
        reply = await client.xreadgroup(
            group,
            self.consumer,
            dict.fromkeys(self.keys, ">"),
            count=self.count,
            block=max(1, int(self.block * 1000)),
        )
        return reply, False

    async def _claim(self) -> Reply:
        """Entries pending for longer than `claim_after` seconds with any consumer of the group
        (one that died, or stopped for good): taken over (`XAUTOCLAIM`), a batch at a time."""
        group = self.group
        assert group is not None
        idle = max(1, int(self.claim_after * 1000))
        out = []
        for key in self.keys:
            reply: Any = await self._client.xautoclaim(
                key, group, self.consumer, idle, start_id="0-0", count=self.count
            )
            entries = reply[1]
            if entries:
                self.claimed += len(entries)
                out.append((key, entries))
        return out

    async def _ack(self) -> None:
        """Acknowledge what was handed on (kept for the next try if Redis does not answer)."""
        group = self.group
        assert group is not None
        for key, ids in self._handed.items():
            if ids:
                await self._client.xack(key, group, *ids)
                self.acked += len(ids)
                ids.clear()
