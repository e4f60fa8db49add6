"""Settings with the guide's timings scaled down, for end-to-end tests against a simulator."""

from __future__ import annotations

from typing import Any

#: Heartbeat 0.3 s, backoff 0.05–0.4 s, breaker 3 failures / 1 s, polling every 0.2 s: each
#: failover scenario runs in a few seconds. Merge an adapter's URLs (a simulator's
#: `settings()`) into a copy.
FAST_SETTINGS: dict[str, Any] = {
    "websocket.enabled": True,
    "websocket.heartbeat.interval": 0.3,
    "websocket.reconnect.base_delay": 0.05,
    "websocket.reconnect.max_delay": 0.4,
    "websocket.circuit_breaker.failure_threshold": 3,
    "websocket.circuit_breaker.recovery_timeout": 1.0,
    "http_fallback.interval": 0.2,
}
