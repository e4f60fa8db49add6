from redis_helpers import redis_server

__all__ = ["redis_server"]
