"""foxtrot-stream: real-time exchange market data for the Foxtrot trading platform.

The public API is what this module exports (`__all__`); everything else is internal and may
change without notice (see CHANGELOG.md: semantic versioning covers this surface).

A plugin author needs only the names imported eagerly below: importing them loads the plugin
contract (hook markers, records, `Tick`, settings types), not the runtime — no event loop code,
no web server, no Prometheus. The host-side classes (`StreamEngine`, `Consumer`) are loaded on
first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from foxtrot_stream.config.settings import (
    Fraction,
    HttpUrl,
    PositiveFloat,
    PositiveInt,
    WebSocketUrl,
    ranged,
)
from foxtrot_stream.contract.hookspecs import hookimpl
from foxtrot_stream.contract.listing import Listing
from foxtrot_stream.contract.model import Tick, TransportKind
from foxtrot_stream.contract.records import (
    AdapterSpec,
    AppHeartbeat,
    BackoffPolicy,
    BreakerPolicy,
    Connection,
    ConnectionEvents,
    ConnectionLimits,
    ConnectionListener,
    ExchangeAdapter,
    Failure,
    FeedContext,
    FrameHandler,
    Instrument,
    Instruments,
    InstrumentSink,
    InstrumentSource,
    PolicySpec,
    Poller,
    PollError,
    PollResult,
    RateLimited,
    ServerClock,
    SimulatedExchange,
    SimulatorSpec,
    Sink,
    SinkSpec,
    Source,
    SourceRequest,
    SourceSpec,
    StateChange,
    SymbolCheck,
    SymbolLister,
    TickSink,
    TransportFailure,
    TransportSpec,
)
from foxtrot_stream.policy.breaker import BreakerState, Transition

if TYPE_CHECKING:
    from foxtrot_stream.integrations.engine import Consumer, StreamEngine

__version__ = "0.1.0"

__all__ = [
    "AdapterSpec",
    "AppHeartbeat",
    "BackoffPolicy",
    "BreakerPolicy",
    "BreakerState",
    "Connection",
    "ConnectionEvents",
    "ConnectionLimits",
    "ConnectionListener",
    "Consumer",
    "ExchangeAdapter",
    "Failure",
    "FeedContext",
    "Fraction",
    "FrameHandler",
    "HttpUrl",
    "Instrument",
    "InstrumentSink",
    "InstrumentSource",
    "Instruments",
    "Listing",
    "PolicySpec",
    "PollError",
    "PollResult",
    "Poller",
    "PositiveFloat",
    "PositiveInt",
    "RateLimited",
    "ServerClock",
    "SimulatedExchange",
    "SimulatorSpec",
    "Sink",
    "SinkSpec",
    "Source",
    "SourceRequest",
    "SourceSpec",
    "StateChange",
    "StreamEngine",
    "SymbolCheck",
    "SymbolLister",
    "Tick",
    "TickSink",
    "Transition",
    "TransportFailure",
    "TransportKind",
    "TransportSpec",
    "WebSocketUrl",
    "__version__",
    "hookimpl",
    "ranged",
]

_LAZY = {
    "StreamEngine": "foxtrot_stream.integrations.engine",
    "Consumer": "foxtrot_stream.integrations.engine",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'foxtrot_stream' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
