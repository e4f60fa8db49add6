"""Entry point of the Redis plugin: registers the `redis` sink (`redis.*`, `--sink redis://`)
and the `redis` source (`foxtrot-stream tail redis://…`, ``redis.consume``)."""

from __future__ import annotations

from typing import Any

from foxtrot_stream.contract.hookspecs import hookimpl
from foxtrot_stream.contract.records import Sink, SinkSpec, Source, SourceRequest, SourceSpec
from foxtrot_stream_redis.settings import RedisSettings

SCHEMES = ("redis", "rediss", "unix")


def _build(settings: Any, adapter: str) -> Sink:
    from foxtrot_stream_redis.sink import RedisSink

    return RedisSink(settings, adapter)


def _build_source(settings: RedisSettings, request: SourceRequest) -> Source:
    from foxtrot_stream_redis.source import RedisSource

    group = settings.group if request.group is None else request.group
    consumer = settings.consumer if request.consumer is None else request.consumer
    return RedisSource(
        settings.url if request.url is None else request.url,
        request.adapter,
        request.symbols,
        key_prefix=settings.key_prefix,
        start=settings.start if request.start is None else request.start,
        block=settings.block,
        timeout=settings.timeout,
        retry_max=settings.retry_max,
        group=group or None,
        consumer=(consumer or None) if group else None,
        claim_after=settings.claim_after,
    )


@hookimpl
def register_sinks() -> list[SinkSpec]:
    return [
        SinkSpec(
            name="redis",
            settings_cls=RedisSettings,
            factory=_build,
            schemes=SCHEMES,
            description="Redis Streams: one stream per adapter and symbol, each tick once.",
        )
    ]


@hookimpl
def register_sources() -> list[SourceSpec]:
    return [
        SourceSpec(
            name="redis",
            settings_cls=RedisSettings,
            factory=_build_source,
            schemes=SCHEMES,
            description="Redis Streams: the ticks a Redis sink wrote (optionally in a "
            "consumer group).",
        )
    ]
