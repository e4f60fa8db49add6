"""The core's own plugin, registered through the core's entry point like any other.

It provides the `exponential` reconnection/breaker policy (the guide's timeline), the
WebSocket transport's registration, and the default `subscribe` and `on_message` hooks that
delegate to the adapter. Plugins override a default by answering first (``tryfirst``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from foxtrot_stream.config.settings import Settings
from foxtrot_stream.contract.hookspecs import hookimpl
from foxtrot_stream.contract.records import (
    Connection,
    ConnectionEvents,
    ConnectionListener,
    ExchangeAdapter,
    FeedContext,
    FrameHandler,
    PolicySpec,
    TickSink,
    TransportSpec,
)
from foxtrot_stream.policy.backoff import Backoff
from foxtrot_stream.policy.breaker import CircuitBreaker
from foxtrot_stream.transport.websocket import WebSocketConnection


def make_backoff(settings: Settings) -> Backoff:
    r = settings.websocket.reconnect
    return Backoff(
        base_delay=r.base_delay,
        max_delay=r.max_delay,
        max_attempts=r.max_attempts,
        jitter=r.jitter,
        rng=random.Random(),
    )


def make_breaker(settings: Settings, clock: Callable[[], float]) -> CircuitBreaker:
    ws = settings.websocket
    return CircuitBreaker(
        failure_threshold=ws.circuit_breaker.failure_threshold,
        recovery_timeout=ws.circuit_breaker.recovery_timeout,
        clock=clock,
    )


@hookimpl
def register_policies() -> list[PolicySpec]:
    return [
        PolicySpec(
            name="exponential",
            make_backoff=make_backoff,
            make_breaker=make_breaker,
            description="The guide's exponential backoff (1, 2, 4 … max_delay) and breaker.",
        )
    ]


@hookimpl
def register_transports() -> list[TransportSpec]:
    return [
        TransportSpec(
            name="websocket",
            settings_cls=None,
            description="aiohttp WebSocket streaming with heartbeat and no-data watchdog.",
        )
    ]


@hookimpl(trylast=True)  # a default: any plugin's own answer comes first
def connect(
    context: FeedContext, transport: str, symbols: Sequence[str], listener: ConnectionListener
) -> Connection | None:
    if transport != "websocket":
        return None
    return WebSocketConnection(context, symbols, listener)


@hookimpl(trylast=True)  # a default: any plugin's own answer comes first
def control_messages(
    adapter: ExchangeAdapter, method: str, streams: Sequence[str], next_id: Callable[[], int]
) -> list[str]:
    size = adapter.limits.max_streams_per_message
    return [
        adapter.control_message(method, streams[i : i + size], next_id())
        for i in range(0, len(streams), size)
    ]


@hookimpl(trylast=True)  # a default: any plugin's own answer comes first
def on_message(adapter: ExchangeAdapter, sink: TickSink, events: ConnectionEvents) -> FrameHandler:
    return adapter.make_handler(sink, events)
