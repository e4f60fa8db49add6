"""The Redis plugin's own keys (`redis.*` in vt_setting.json): the sink's and the source's."""

from __future__ import annotations

from typing import Any

import attrs

from foxtrot_stream.config.settings import PositiveFloat, PositiveInt, ranged


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
        metadata={"doc": "The Redis server: redis://[:password@]HOST:PORT/DB (rediss:// for TLS)."},
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

    def __attrs_post_init__(self) -> None:
        if self.enabled and self.consume:
            raise ValueError(
                "redis.enabled and redis.consume are both true: a process that reads its ticks "
                "from Redis would publish them back; set one of them to false"
            )
