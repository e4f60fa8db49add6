"""Entry point of the Redis plugin: registers the `redis` sink (`redis.*`, `--sink redis://`)."""

from __future__ import annotations

from typing import Any

from foxtrot_stream.contract.hookspecs import hookimpl
from foxtrot_stream.contract.records import Sink, SinkSpec
from foxtrot_stream_redis.settings import RedisSettings


def _build(settings: Any, adapter: str) -> Sink:
    from foxtrot_stream_redis.sink import RedisSink

    return RedisSink(settings, adapter)


@hookimpl
def register_sinks() -> list[SinkSpec]:
    return [
        SinkSpec(
            name="redis",
            settings_cls=RedisSettings,
            factory=_build,
            schemes=("redis", "rediss", "unix"),
            description="Redis Streams: one stream per adapter and symbol, each tick once.",
        )
    ]
