"""The Redis plugin's own keys (`redis.*` in vt_setting.json): the sink's and the source's."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs

from foxtrot_stream.config.settings import PositiveFloat, PositiveInt, ranged
from foxtrot_stream.util.redact import redact

#: Query parameters a ``rediss://`` URL may carry (the sink's own connection honours these).
TLS_PARAMETERS = frozenset(
    {"ssl_ca_certs", "ssl_cert_reqs", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname"}
)
URL_PARAMETERS = frozenset({"db", "password", "username"})


def url_problem(url: str) -> str | None:
    """Why the sink and the source cannot use `url` (None: they can). Cheap: no `redis`
    import, so that loading the settings does not pay for the client library."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError as exc:
        return str(exc)
    if parts.scheme not in ("redis", "rediss", "unix"):
        return "expected redis://[:password@]HOST:PORT/DB, rediss://… (TLS) or unix:///PATH"
    query = set(parse_qs(parts.query, keep_blank_values=True))
    unknown = query - URL_PARAMETERS - TLS_PARAMETERS
    if unknown:
        return f"unsupported URL parameter(s): {', '.join(sorted(unknown))}"
    if parts.scheme != "rediss" and query & TLS_PARAMETERS:
        return "ssl_* parameters need a rediss:// URL"
    if parts.scheme == "unix" and not parts.path:
        return "a unix:// URL needs the socket's path (unix:///run/redis.sock)"
    return None


def _url(_inst: Any, attribute: attrs.Attribute[str], value: str) -> None:
    problem = url_problem(value)
    if problem is not None:
        raise ValueError(f"redis.{attribute.name} = {redact(value)!r}: {problem}")


def _start(_inst: Any, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in START:
        raise ValueError(f"redis.{attribute.name} = {value!r}: expected 'now' or 'oldest'")


def _name(_inst: Any, attribute: attrs.Attribute[str], value: str) -> None:
    if any(c.isspace() for c in value) or len(value) > 200:
        raise ValueError(
            f"redis.{attribute.name} = {value!r}: expected a name without spaces "
            "(at most 200 characters)"
        )


START = ("now", "oldest")


@attrs.frozen
class RedisSettings:
    enabled: bool = attrs.field(
        default=False,
        metadata={
            "doc": "Publish every delivered tick to Redis Streams (also: `foxtrot-stream run "
            "--sink redis://HOST:PORT/DB`)."
        },
    )
    url: str = attrs.field(
        default="redis://127.0.0.1:6379/0",
        validator=_url,
        metadata={
            "doc": "The Redis server: redis://[[user]:password@]HOST:PORT/DB, rediss://… for "
            "TLS (query parameters ssl_ca_certs, ssl_cert_reqs, ssl_certfile, ssl_keyfile, "
            "ssl_check_hostname) or unix:///PATH?db=N."
        },
    )
    key_prefix: str = attrs.field(
        default="ticks",
        metadata={
            "doc": "Stream keys are `<prefix>:{<adapter>:<symbol>}` (the braces are a Redis "
            "Cluster hash tag: one symbol's stream lives on one node)."
        },
    )
    maxlen: PositiveInt = attrs.field(
        default=PositiveInt(100_000),
        metadata=ranged(
            "Entries kept per stream, trimmed approximately (`XADD … MAXLEN ~`): Redis trims "
            "whole nodes, so a stream may hold somewhat more.",
            low=1,
            high=1_000_000_000,
        ),
    )
    buffer: PositiveInt = attrs.field(
        default=PositiveInt(100_000),
        metadata=ranged(
            "Ticks held while Redis is down or slow (besides the one batch being written); "
            "beyond it the oldest waiting tick is dropped (counted). Local consumers are never "
            "held back.",
            low=1,
            high=10_000_000,
        ),
    )
    batch: PositiveInt = attrs.field(
        default=PositiveInt(1_000),
        metadata=ranged("Ticks per pipelined write (one round trip each).", low=1, high=100_000),
    )
    timeout: PositiveFloat = attrs.field(
        default=PositiveFloat(2.0),
        metadata=ranged(
            "Seconds a connect or a write may take before Redis counts as down (the write is "
            "retried: its explicit ids make a retry harmless).",
            low=0.01,
            high=60.0,
        ),
    )
    retry_max: PositiveFloat = attrs.field(
        default=PositiveFloat(1.0),
        metadata=ranged(
            "Longest wait between two attempts to reach Redis again (seconds; the wait "
            "doubles from 0.05 s up to it).",
            low=0.01,
            high=60.0,
        ),
    )
    flush_timeout: PositiveFloat = attrs.field(
        default=PositiveFloat(2.0),
        metadata=ranged(
            "On stop, how long the sink may take to write what it holds; the rest is counted "
            "as dropped.",
            low=0.0,
            high=300.0,
        ),
    )
    consume: bool = attrs.field(
        default=False,
        metadata={
            "doc": "Hosts (the Foxtrot adapter, the vnpy gateway, `StreamEngine`) read ticks "
            "from Redis Streams instead of connecting to the exchange (not together with "
            "`redis.enabled`: a process would republish what it reads)."
        },
    )
    start: str = attrs.field(
        default="now",
        validator=_start,
        metadata={
            "doc": "Where reading starts on a stream not read before: `now` (entries written "
            "from now on) or `oldest` (every entry the stream still holds)."
        },
    )
    group: str = attrs.field(
        default="",
        validator=_name,
        metadata={
            "doc": "A consumer group to read in (`XREADGROUP`): the processes of one group "
            "share the entries, each entry to one of them, acknowledged once handed on. Empty: "
            "every reader gets every entry."
        },
    )
    consumer: str = attrs.field(
        default="",
        validator=_name,
        metadata={
            "doc": "This process's name in `redis.group` (empty: the host name); keep it across "
            "restarts so that it re-reads what it had been given but not acknowledged."
        },
    )
    block: PositiveFloat = attrs.field(
        default=PositiveFloat(1.0),
        metadata=ranged(
            "Longest wait of one read for new entries (seconds); a symbol subscribed meanwhile "
            "is read from the next read on.",
            low=0.01,
            high=60.0,
        ),
    )
    claim_after: PositiveFloat = attrs.field(
        default=PositiveFloat(60.0),
        metadata=ranged(
            "In `redis.group`: entries given to another consumer of the group and not "
            "acknowledged for this many seconds (that process died) are taken over "
            "(`XAUTOCLAIM`) and handed on here; 0: never.",
            low=0.0,
            high=86_400.0,
        ),
    )

    def __attrs_post_init__(self) -> None:
        if self.enabled and self.consume:
            raise ValueError(
                "redis.enabled and redis.consume are both true: a process that reads its ticks "
                "from Redis would publish them back; set one of them to false"
            )
