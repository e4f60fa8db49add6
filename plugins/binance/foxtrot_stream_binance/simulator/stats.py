"""What the simulator saw, for tests to assert against (rather than against our own client).

Plain mutable counters: they are written on the event loop and read between awaits.
Times are `time.monotonic()` seconds.
"""

from __future__ import annotations

import bisect
import collections

import attrs


@attrs.define
class ConnectionStats:
    """One WebSocket connection, kept after it closes."""

    id: int
    path: str
    combined: bool
    opened_at: float
    closed_at: float | None = None
    close_reason: str | None = None
    """client, dropped, too many requests, pong timeout, lifetime, server shutdown, invalid
    stream, flap, slow consumer, stopped."""
    messages_received: int = 0
    """Everything the incoming limit counts: text, binary, ping and pong frames."""
    control_messages: int = 0
    pings_received: int = 0
    pongs_received: int = 0
    pongs_matched: int = 0
    """Pongs that echoed an outstanding ping (only these keep the connection alive)."""
    pings_sent: int = 0
    max_per_second: int = 0
    """Most incoming messages seen within one `incoming_window`."""
    streams: int = 0
    max_streams: int = 0
    frames_sent: int = 0
    subscriptions: list[tuple[str, ...]] = attrs.Factory(list)
    """The params of each SUBSCRIBE, in order (the URL's streams first, if any)."""


def _recent() -> collections.deque[float]:
    return collections.deque(maxlen=1000)


@attrs.define
class SimulatorStats:
    connection_attempts: int = 0
    attempt_times: list[float] = attrs.Factory(list)
    refused_upgrades: int = 0
    """Upgrades answered 503 by `refuse_upgrades`."""
    attempts_over_limit: int = 0
    """Upgrades answered 429 for going over `attempt_limit` per `attempt_window`."""
    held_handshakes: int = 0
    """Upgrades held by `slow_handshake` before their 101 answer."""
    handshake_holds: collections.deque[float] = attrs.Factory(_recent)
    """Seconds each held upgrade was to be held, as decided when it arrived (the last 1,000)."""
    connections_opened: int = 0
    connections: dict[int, ConnectionStats] = attrs.Factory(dict)
    """Every connection by id, open or closed."""
    control_messages: int = 0
    max_incoming_per_second: int = 0
    rate_limit_disconnects: int = 0
    pong_timeouts: int = 0
    slow_consumer_drops: int = 0
    max_streams_per_connection: int = 0
    frames_sent: int = 0
    refused_subscriptions: int = 0
    """SUBSCRIBEs refused by `refuse_subscriptions`, and connection URLs whose streams of
    refused symbols were left out."""
    subscribe_requests: list[tuple[int, int]] = attrs.Factory(list)
    """(connection id, streams in the request) for each SUBSCRIBE, the URL's included."""
    rest_requests: int = 0
    rest_by_path: dict[str, int] = attrs.Factory(dict)
    rest_holds: collections.deque[float] = attrs.Factory(_recent)
    """Seconds each REST request was held by `slow_rest` (0.0: not held), in arrival order (the
    last 1,000: a simulator answering polls for days keeps a bounded record)."""
    rest_longest_query: int = 0
    """The longest query string of a REST request, in characters (URLs have limits)."""
    rest_throttled: int = 0
    """429 answers (weight limit or injected)."""
    rest_banned: int = 0
    """418 answers (ban or injected)."""
    rest_injected: int = 0
    """Answers replaced by `rest_errors`."""

    def attempts_between(self, start: float, end: float = float("inf")) -> int:
        """Connection attempts with start <= time < end (monotonic seconds)."""
        return bisect.bisect_left(self.attempt_times, end) - bisect.bisect_left(
            self.attempt_times, start
        )

    def open_connections(self) -> list[ConnectionStats]:
        return [c for c in self.connections.values() if c.closed_at is None]
