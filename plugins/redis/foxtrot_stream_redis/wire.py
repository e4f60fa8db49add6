"""The sink's write path to Redis: `XADD` commands encoded here, replies parsed by hiredis.

Why not the `redis` client's pipeline: per tick it builds the keyword arguments, encodes each of
the ~30 arguments through its encoder, and parses each reply through a coroutine with its own
timeout: about 30 µs of CPU per tick on a 2-vCPU EPYC guest (40 µs for a refused duplicate,
raised and caught as an exception), i.e. a core for 33k ticks/s. Here a batch is one string
built with the per-stream constant parts cached, written in one go, and its replies are read
with one `hiredis.Reader` over however many socket reads they take: about 3.5 µs per tick,
duplicates included (`benchmarks/redis_sink.py`). The URL keeps the `redis` client's syntax
(its `parse_url`), so the sink and `RedisSource` read the same `redis.url`.

`Connection` speaks RESP2 (as `XADD`'s reply needs nothing newer): `AUTH` and `SELECT` at
connect when the URL asks for them, TLS for ``rediss://``, a Unix socket for ``unix://``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from typing import Any

import hiredis
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection, parse_url
from redis.exceptions import ConnectionError as RedisConnectionError

from foxtrot_stream.contract.model import Tick
from foxtrot_stream_redis.ids import stream_key
from foxtrot_stream_redis.settings import url_problem

#: `XADD` arguments per entry: XADD key MAXLEN ~ n id + 12 field/value pairs.
ARGUMENTS = 6 + 2 * 12


def _bulk(text: str) -> str:
    return f"${len(text.encode())}\r\n{text}\r\n"


def command(*words: str) -> bytes:
    """One command, encoded (for the few sent once per connection)."""
    return (f"*{len(words)}\r\n" + "".join(_bulk(w) for w in words)).encode()


def url_options(url: str) -> dict[str, Any]:
    """What `url` asks for (`redis.url`): the `redis` client's reading of it. Raises ValueError
    for a URL the sink cannot honour (`settings.url_problem`: the settings refuse it first)."""
    problem = url_problem(url)
    if problem is not None:
        raise ValueError(problem)
    return dict(parse_url(url))


def _tls(options: Mapping[str, Any]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=options.get("ssl_ca_certs"))
    if options.get("ssl_certfile"):
        context.load_cert_chain(options["ssl_certfile"], options.get("ssl_keyfile"))
    if str(options.get("ssl_cert_reqs", "required")).lower() in ("none", "0"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif str(options.get("ssl_check_hostname", "true")).lower() in ("false", "0", "no"):
        context.check_hostname = False
    return context


class Connection:
    """One connection for pipelined writes; any failure closes it (the caller reconnects)."""

    def __init__(self, url: str, timeout: float) -> None:
        self.options = url_options(url)
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._parser = hiredis.Reader()

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    async def open(self) -> None:
        o = self.options
        kind = o.get("connection_class")
        async with asyncio.timeout(self.timeout):
            if kind is UnixDomainSocketConnection:
                reader, writer = await asyncio.open_unix_connection(o["path"])
            else:
                host, port = o.get("host", "localhost"), int(o.get("port", 6379))
                tls = _tls(o) if kind is SSLConnection else None
                reader, writer = await asyncio.open_connection(host, port, ssl=tls)
        self._reader, self._writer = reader, writer
        self._parser = hiredis.Reader()
        hello = []
        if o.get("password") is not None:
            user = o.get("username")
            words = ("AUTH", user, o["password"]) if user else ("AUTH", o["password"])
            hello.append(command(*words))
        if o.get("db"):
            hello.append(command("SELECT", str(o["db"])))
        if hello:
            for reply in await self.send(b"".join(hello), len(hello)):
                if isinstance(reply, hiredis.ReplyError):
                    self.close()
                    # Redis's own words (e.g. WRONGPASS), never the password
                    raise RedisConnectionError(f"Redis refused the connection: {reply}")

    async def send(self, data: bytes, replies: int) -> list[Any]:
        """Write `data` (`replies` commands) and read their replies (`bytes`, or a
        `hiredis.ReplyError` for a refused command) within the timeout."""
        reader, writer = self._reader, self._writer
        if reader is None or writer is None:
            raise RedisConnectionError("not connected")
        parser = self._parser
        out: list[Any] = []
        try:
            async with asyncio.timeout(self.timeout):
                writer.write(data)
                await writer.drain()
                while len(out) < replies:
                    chunk = await reader.read(1 << 16)
                    if not chunk:
                        raise RedisConnectionError("Redis closed the connection")
                    parser.feed(chunk)
                    while (reply := parser.gets()) is not False:
                        out.append(reply)
        except BaseException:
            self.close()  # a half-read reply stream cannot be resumed: start over
            raise
        return out

    def close(self) -> None:
        writer = self._writer
        self._reader = self._writer = None
        if writer is not None:
            writer.close()


class Encoder:
    """`XADD` commands for ticks, one stream per symbol; each command carries every `Tick`
    field as `sink.entry` names it (the reader's `tick_of` is the inverse)."""

    def __init__(self, prefix: str, maxlen: int) -> None:
        self.prefix = prefix
        self.maxlen = str(maxlen)
        self._heads: dict[str, tuple[str, str]] = {}
        self.keys: dict[str, str] = {}

    def _head(self, tick: Tick) -> tuple[str, str]:
        key = self.keys[tick.symbol] = stream_key(self.prefix, tick.adapter, tick.symbol)
        head = f"*{ARGUMENTS}\r\n$4\r\nXADD\r\n{_bulk(key)}$6\r\nMAXLEN\r\n$1\r\n~\r\n" + _bulk(
            self.maxlen
        )
        ident = "$7\r\nadapter\r\n" + _bulk(tick.adapter) + "$6\r\nsymbol\r\n" + _bulk(tick.symbol)
        self._heads[tick.symbol] = (head, ident)
        return head, ident

    def xadd(self, tick: Tick, entry_id: str) -> str:
        """The command appending `tick` as `entry_id` (text; ASCII apart from adapter and
        symbol, whose byte lengths the cached parts already account for)."""
        parts = self._heads.get(tick.symbol)
        head, ident = self._head(tick) if parts is None else parts
        b, bq, a, aq = repr(tick.bid), repr(tick.bid_qty), repr(tick.ask), repr(tick.ask_qty)
        last = "" if tick.last is None else repr(tick.last)
        seq = "" if tick.seq is None else str(tick.seq)
        tid = "" if tick.trade_id is None else str(tick.trade_id)
        ets = "" if tick.exchange_ts is None else str(tick.exchange_ts)
        rts = str(tick.received_ts)
        tr = tick.transport.value
        return (
            f"{head}${len(entry_id)}\r\n{entry_id}\r\n{ident}"
            f"$3\r\nbid\r\n${len(b)}\r\n{b}\r\n$7\r\nbid_qty\r\n${len(bq)}\r\n{bq}\r\n"
            f"$3\r\nask\r\n${len(a)}\r\n{a}\r\n$7\r\nask_qty\r\n${len(aq)}\r\n{aq}\r\n"
            f"$4\r\nlast\r\n${len(last)}\r\n{last}\r\n$3\r\nseq\r\n${len(seq)}\r\n{seq}\r\n"
            f"$8\r\ntrade_id\r\n${len(tid)}\r\n{tid}\r\n"
            f"$11\r\nexchange_ts\r\n${len(ets)}\r\n{ets}\r\n"
            f"$11\r\nreceived_ts\r\n${len(rts)}\r\n{rts}\r\n"
            f"$9\r\ntransport\r\n${len(tr)}\r\n{tr}\r\n"
        )
