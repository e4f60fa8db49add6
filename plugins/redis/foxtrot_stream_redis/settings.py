"""The Redis sink's own keys (`redis.*` in vt_setting.json)."""

from __future__ import annotations

import attrs

from foxtrot_stream.config.settings import PositiveFloat, PositiveInt, ranged


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
