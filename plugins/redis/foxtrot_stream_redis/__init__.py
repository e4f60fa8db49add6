"""The Redis Streams sink of foxtrot-stream: one stream per adapter and symbol, every delivered
tick published once and in order, even by several redundant feeds (see `ids`)."""

from foxtrot_stream_redis.ids import StreamIds, parse_id, stream_key
from foxtrot_stream_redis.settings import RedisSettings

__all__ = ["RedisSettings", "StreamIds", "parse_id", "stream_key"]
