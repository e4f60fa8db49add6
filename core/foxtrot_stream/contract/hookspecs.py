"""Every hook a foxtrot-stream plugin can implement. This module is the plugin author's reference.

Plugins are found through entry points in group ``foxtrot_stream`` and loaded one at a time in
sorted order (see `foxtrot_stream.contract.plugins`). Implement a hook with::

    from foxtrot_stream import hookimpl

    @hookimpl
    def register_adapters():
        return [AdapterSpec(name="kraken", display_name="KrakenAdapter", ...)]

Rules that hold for every hook:

* **No hookimpl is ``async def``.** pluggy would take the coroutine object as the answer (and end a
  ``firstresult`` call with it). Hooks that must do I/O return an object whose async methods the
  feed awaits.
* **Hooks never run per frame.** A pluggy call costs about a microsecond, a third of the per-tick
  budget; `on_message` is asked once per connection and returns the handler the feed then calls
  directly.
* **A plugin that raises never takes a feed down.** The feed catches the exception, logs it on the
  adapter's ``<Display>Error`` logger with the plugin's name, counts it, and goes on as if that
  implementation had returned None.
* Lifecycle hooks run on the feed's event-loop task (one asyncio loop, in the engine's own thread
  when loaded by the Foxtrot engine); registration hooks run once, at plugin-load time, on the
  thread that builds the plugin manager.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from foxtrot_stream.contract.records import (
        AdapterSpec,
        Connection,
        ConnectionEvents,
        ConnectionListener,
        ExchangeAdapter,
        Failure,
        FeedContext,
        FrameHandler,
        PolicySpec,
        Poller,
        SinkSpec,
        SourceSpec,
        StateChange,
        TickSink,
        TransportSpec,
    )

PROJECT = "foxtrot_stream"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --- registration hooks ---------------------------------------------------------------------


@hookspec
def register_adapters() -> Sequence[AdapterSpec]:
    """Declare the exchange adapters this plugin provides.

    Called: once, when the plugin manager loads plugins (before settings are read, so that
    the settings loader knows every adapter's keys).
    Returns: a list of `AdapterSpec` (empty if the plugin provides none). Not ``firstresult``:
    every plugin's list is collected.
    Ordering: irrelevant; names must be unique across all plugins.
    On raise: the plugin is reported (distribution and version) and skipped; if the settings
    enable it, startup fails.
    Example: the Binance plugin returns ``[AdapterSpec(name="binance",
    display_name="BinanceAdapter", settings_cls=BinanceSettings, factory=BinanceAdapter)]``.
    """
    raise NotImplementedError


@hookspec
def register_transports() -> Sequence[TransportSpec]:
    """Declare the transport strategies this plugin provides (WebSocket streaming, HTTP polling).

    Called: once, at plugin-load time. Returns: a list of `TransportSpec`; not ``firstresult``.
    A transport with a ``settings_key`` owns the keys under it (``http_fallback.interval``).
    On raise: as `register_adapters`.
    """
    raise NotImplementedError


@hookspec
def register_policies() -> Sequence[PolicySpec]:
    """Declare reconnection/circuit-breaker policies (builders of the pure state machines).

    Called: once, at plugin-load time. Returns: a list of `PolicySpec`; not ``firstresult``.
    The core registers ``exponential`` (the guide's timeline and breaker); the feed uses the
    policy named by ``websocket.policy``. On raise: as `register_adapters`.
    """
    raise NotImplementedError


@hookspec
def register_sinks() -> Sequence[SinkSpec]:
    """Declare the tick sinks this plugin provides (where feeds publish what they deliver).

    Called: once, at plugin-load time. Returns: a list of `SinkSpec`; not ``firstresult``.
    A sink owns the settings keys under ``SinkSpec.key`` and is enabled by ``<key>.enabled``
    (or ``foxtrot-stream run --sink URL`` with one of its `schemes`); each feed then builds one
    with ``factory(settings, adapter)``, awaits its ``start()``, calls its ``put(tick)`` on the
    loop for every delivered tick (it must only buffer: bounded, drops counted), awaits its
    ``stop()`` (a flush) when the feed stops, and shows its ``health()`` in ``status()`` and
    ``/metrics``. A sink whose ``start`` raises is logged and counted; the feed goes on
    without it. On raise (of this hook): as `register_adapters`.
    """
    raise NotImplementedError


@hookspec
def register_sources() -> Sequence[SourceSpec]:
    """Declare the tick sources this plugin provides (where ticks are read back from, instead
    of an exchange: the streams a sink wrote).

    Called: once, at plugin-load time. Returns: a list of `SourceSpec`; not ``firstresult``.
    `foxtrot-stream tail URL` builds the source whose `schemes` include the URL's scheme with
    ``factory(settings, SourceRequest(adapter, symbols, url, start, group, consumer))`` and
    prints every tick of its ``ticks()``. A host's `StreamEngine` builds one per adapter
    instead of a feed when ``<key>.consume`` is true, calls ``add``/``remove`` as the host
    (un)subscribes, hands each tick to its consumers and shows ``health()`` in ``status()``.
    Ordering: irrelevant; names must be unique across plugins. On raise (of this hook): as
    `register_adapters`.
    """
    raise NotImplementedError


# --- lifecycle hooks ------------------------------------------------------------------------


@hookspec(firstresult=True)
def connect(
    context: FeedContext, transport: str, symbols: Sequence[str], listener: ConnectionListener
) -> Connection | None:
    """Build a connection carrying `symbols` of ``context.adapter`` over `transport`.

    Called: by the feed on its event-loop task each time it (re)connects a shard — the first
    connect, every reconnect after the backoff delay, every half-open probe and every rotation
    before the exchange's lifetime cut.
    The connection reports its state to `listener` (opened, first data, bad frames, the
    exchange's shutdown notice, rejected subscriptions) and raises `TransportFailure` from
    ``run()`` when it fails.
    Returns: a `Connection` (not yet open: the feed awaits ``connection.run()``), or None if
    this plugin does not handle `transport`. ``firstresult``: the first non-None answer wins;
    the core's WebSocket transport answers for ``"websocket"``.
    On raise: counted as a failed connect attempt (it feeds the backoff and the breaker).
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def control_messages(
    adapter: ExchangeAdapter, method: str, streams: Sequence[str], next_id: Callable[[], int]
) -> list[str] | None:
    """Build the control messages that (un)subscribe `streams` on a live connection.

    Called: on the feed's task when symbols are added to or removed from a live connection
    (``method`` is ``"SUBSCRIBE"`` or ``"UNSUBSCRIBE"``) and when a reconnect resubscribes.
    The caller has already split `streams` to respect the exchange's per-connection limits.
    Returns: the wire messages in sending order (each one request, ids from `next_id`), or
    None to defer to the next implementation; the core's default uses
    ``adapter.control_message`` and batches as many streams per message as allowed.
    ``firstresult``. On raise: the (un)subscribe fails for those symbols and is reported on them.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def on_message(
    adapter: ExchangeAdapter, sink: TickSink, events: ConnectionEvents
) -> FrameHandler | None:
    """Return the per-connection frame handler.

    Called: once per connection, on the feed's task, right after it opens — never per frame.
    Returns: a callable ``handler(frame, received_ns)`` that decodes a frame and calls `sink`
    once per tick; the transport calls it directly for every frame. ``firstresult``; the core's
    default returns ``adapter.make_handler(sink, events)``. A plugin that wants to see raw
    frames (a recorder, say) wraps the next handler.
    On raise: the connection is closed and counted as a failure.
    A handler must not raise on a bad frame: it reports it with ``events.malformed``.
    """
    raise NotImplementedError


@hookspec
def on_failure(failure: Failure) -> None:
    """Observe a transport failure (for logging, metrics, alerting).

    Called: on the feed's task after each failure DESIGN §5 names (connect failed or timed out,
    connection dropped, pong timeout, no data for twice the heartbeat interval, subscription
    rejected), after the feed has recorded it in its backoff and breaker. Not ``firstresult``;
    the return value is ignored. On raise: logged and counted, the feed goes on.
    """
    raise NotImplementedError


@hookspec
def on_state_change(change: StateChange) -> None:
    """Observe a feed's state changes: connections up and down, breaker transitions, and the
    transport serving each symbol (for alerting, dashboards, an engine's own status).

    Called: on the feed's task, right after the change, once per change — never per tick.
    Returns: nothing (not ``firstresult``; a value is ignored).
    On raise: logged and counted, the feed goes on.
    An observer must not block: it runs on the feed's event loop.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def fallback(context: FeedContext, symbols: Sequence[str], reason: str) -> Poller | None:
    """Provide an HTTP poller for symbols that the WebSocket cannot serve.

    Called: on the feed's task when the breaker opens (the failed connection's symbols move to
    polling at once), and at start for symbols routed off WebSocket by the settings (global
    off, adapter off, or not in ``websocket.<adapter>.symbols``). `reason` says which.
    Returns: a `Poller` (the feed runs ``poller.run()`` and later adds/removes symbols), or
    None if this plugin cannot poll for this adapter. ``firstresult``. The bundled
    ``http_fallback`` plugin answers for every adapter whose ``poll`` works.
    On raise: logged on ``<Display>Error``; the symbols stay unserved until the next retry.
    """
    raise NotImplementedError
