"""What plugins provide: typed registration records and the interfaces the feed drives.

Registration hooks return the records below (frozen attrs). Where a record came from
(distribution and version) is kept beside it by the plugin manager, not written onto it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

from foxtrot_stream.contract.model import Tick
from foxtrot_stream.util.redact import redact

if TYPE_CHECKING:
    import aiohttp

    from foxtrot_stream.config.settings import Settings
    from foxtrot_stream.policy.breaker import BreakerState, Transition

#: Where decoded ticks go. Called on the feed's event-loop task, once per tick: keep it cheap.
TickSink = Callable[[Tick], None]


def _is_identifier(_inst: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not value.isidentifier() or value != value.lower():
        raise ValueError(
            f"{attribute.name} must be a lowercase identifier (it becomes a settings key), "
            f"got {value!r}"
        )


@attrs.frozen
class ConnectionLimits:
    """An exchange's rules for one WebSocket connection, respected by construction."""

    max_streams: int
    max_control_messages_per_second: float
    max_lifetime: float
    """Seconds after which the exchange cuts a connection; the feed rotates before it."""
    max_streams_per_message: int = 200
    """Streams per SUBSCRIBE/UNSUBSCRIBE request (keeps each request well-formed and small)."""
    max_connects: int = 300
    connect_window: float = 300.0
    """At most `max_connects` connection attempts per `connect_window` seconds per host (IP)."""
    max_idle: float | None = None
    """Seconds after which the exchange closes a connection on which the client sent nothing
    (OKX: 30): heartbeats are then sent at least every 0.8 × this, whatever the settings."""


@attrs.frozen
class AppHeartbeat:
    """An exchange's application-level heartbeat, declared by an adapter as its
    `app_heartbeat` attribute: the text the client sends instead of a protocol ping, and the
    exact frame that answers it (OKX: `"ping"` → `"pong"`; Bybit: a JSON `{"op": "ping"}`
    answered by a frame to recognise with `answer`). The answer counts as the pong and never
    reaches the adapter's frame handler."""

    message: str
    answer: str


class SimulatedExchange(Protocol):
    """A running local simulator of an exchange (for `demo`, tests and plugin authors)."""

    def settings(self) -> dict[str, Any]:
        """vt_setting.json keys that point the adapter at this simulator."""
        ...

    def outage(self, seconds: float) -> None:
        """Script an outage: drop every connection and refuse new ones for `seconds`."""
        ...

    async def stop(self) -> None: ...


@attrs.frozen
class SimulatorSpec:
    """How to run an adapter's simulator: from the command line, or in-process."""

    main: Callable[[list[str]], int]
    """`foxtrot-stream simulate <adapter> ARGS…`."""
    start: Callable[[Sequence[str], float], Awaitable[SimulatedExchange]]
    """Start one on 127.0.0.1 for (symbols, updates per second per symbol)."""
    demo_symbols: tuple[str, ...] = ()
    """The symbols `foxtrot-stream demo` streams from it, as the adapter spells them (empty:
    Binance's spelling, ``BTCUSDT ETHUSDT BNBUSDT SOLUSDT``)."""


@attrs.frozen
class AdapterSpec:
    """An exchange adapter: what `register_adapters` returns.

    `name` is the settings key (`websocket.<name>.*` and `<name>.*`), `display_name` the
    logger prefix (`BinanceAdapter` → loggers `BinanceAdapter`, `BinanceAdapterWebSocket`,
    `BinanceAdapterError`). `settings_cls` is an attrs class with defaults for every field:
    the plugin's own keys under `<name>.`. `factory` builds the adapter for one feed.
    """

    name: str = attrs.field(validator=_is_identifier)
    display_name: str
    settings_cls: type[Any] | None
    factory: Callable[[Any], ExchangeAdapter]
    description: str = ""
    simulator: SimulatorSpec | None = None
    """A local simulator of the exchange: `foxtrot-stream simulate <name>` and `demo` use it."""
    host_exchanges: Mapping[str, str] = attrs.Factory(dict)
    """host platform → the name of the member of that host's `Exchange` enum this adapter's
    symbols belong to (Binance spot: ``{"foxtrot": "BINANCE", "vnpy": "GLOBAL"}``). The host
    integrations (`foxtrot_stream.integrations`) read it; a host missing here gets its
    integration's fallback."""


@attrs.frozen
class TransportSpec:
    """A transport strategy (WebSocket streaming, HTTP polling, …).

    `settings_key` is the prefix of its own keys (`http_fallback.*`), None if it has none.
    """

    name: str = attrs.field(validator=_is_identifier)
    settings_cls: type[Any] | None
    settings_key: str | None = None
    description: str = ""
    adapters: tuple[str, ...] = ()
    """The adapters this transport serves (empty: every adapter). The `connect` hook of its
    plugin is called only for those."""
    role: str = "stream"
    """`"stream"`: it carries connections (`connect`); a feed streams over the stream transport
    registered for its adapter (one naming the adapter in `adapters` before a general one).
    `"poll"`: it polls (`fallback`), like the bundled `http`."""


@runtime_checkable
class Sink(Protocol):
    """Where a feed publishes every tick it delivers, beyond this process (a Redis stream, a
    file, a message bus): built by a `SinkSpec`'s factory, one per feed.

    The feed calls `put` on its event loop for every delivered tick, like any consumer: it must
    be cheap and never wait (append to a bounded buffer; a task of the sink's own writes it
    out). When the destination is down or slow the sink buffers within its bound and counts
    what it drops; it never slows the feed or its other consumers.
    """

    name: str

    async def start(self) -> None:
        """Called by the feed as it starts, before the first `put`: start the writer task. It
        must not wait for the destination (one that is down is retried by the sink)."""
        ...

    def put(self, tick: Tick) -> None:
        """One delivered tick, on the feed's loop: buffer it (bounded, counted)."""
        ...

    async def stop(self) -> None:
        """Called by the feed as it stops, after the last `put`: flush what is buffered
        (within the sink's own time limit), then close."""
        ...

    def health(self) -> dict[str, Any]:
        """Plain JSON-safe counters for `status()` and `/metrics`: at least ``connected``
        (bool), ``written``, ``dropped``, ``queued``, ``reconnects`` and ``errors`` (ints);
        a sink may add its own (the Redis sink adds ``duplicates``)."""
        ...


@runtime_checkable
class InstrumentSink(Protocol):
    """Optional sink capability: the exchange's instrument list, published next to the ticks so
    that hosts reading from the sink's destination get contracts too. A feed with such a sink
    (and an adapter with `Instruments`) hands it the list once it has it after starting."""

    def put_instruments(self, instruments: Sequence[Instrument]) -> None:
        """The list (on the feed's loop; like `put`, it must not wait: the writer sends it)."""
        ...


@attrs.frozen
class SinkSpec:
    """A tick sink: what `register_sinks` returns.

    `settings_cls` (an attrs class with defaults for every field) owns the keys under
    `settings_key` (default: `name`), and must have an `enabled` boolean: the feed builds a sink
    for each spec whose settings say ``<key>.enabled = true``. `schemes` are the URL schemes
    `foxtrot-stream run --sink URL` hands to this sink (it sets ``<key>.enabled`` and
    ``<key>.url``, so a sink with schemes has a `url` string too). `factory(settings, adapter)`
    builds one sink for the feed of `adapter`.
    """

    name: str = attrs.field(validator=_is_identifier)
    settings_cls: type[Any]
    factory: Callable[[Any, str], Sink]
    settings_key: str | None = None
    schemes: tuple[str, ...] = ()
    description: str = ""

    @property
    def key(self) -> str:
        return self.settings_key or self.name


@runtime_checkable
class Source(Protocol):
    """Where ticks come from instead of an exchange: the streams a sink wrote (Redis), read
    back by a consumer on another machine. Built by a `SourceSpec`'s factory, used on one
    event loop: `foxtrot-stream tail` iterates `ticks()` and prints each tick; a host whose
    settings say ``<key>.consume`` runs it in place of its feed (`StreamEngine`).
    """

    name: str

    def ticks(self) -> AsyncIterator[Tick]:
        """Every tick of the symbols it reads, each symbol's in order, for ever (until the
        task iterating it is cancelled, or `aclose`). A tick counts as handed on once yielded
        (a consumer group acknowledges it before its next read, or at `aclose`). A lost
        connection is retried and counted, never raised."""
        ...

    def add(self, symbols: Sequence[str]) -> None:
        """Read these symbols too, from the next read on (any time, on the loop)."""
        ...

    def remove(self, symbols: Sequence[str]) -> None:
        """Stop reading these symbols (unknown ones are ignored)."""
        ...

    @property
    def symbols(self) -> frozenset[str]:
        """The symbols it reads."""
        ...

    async def aclose(self) -> None:
        """Close its connections (acknowledging what was handed on, for a group)."""
        ...

    def health(self) -> dict[str, Any]:
        """Plain JSON-safe counters for `status()`: at least ``connected`` (bool), ``read``,
        ``reconnects`` and ``errors`` (ints); a source may add its own."""
        ...


@runtime_checkable
class InstrumentSource(Protocol):
    """Optional source capability: the instrument list an `InstrumentSink` published, for a
    host reading from the source (its contracts)."""

    async def instruments(self) -> Sequence[Instrument]:
        """The list as last published (`LookupError` if none was)."""
        ...


@attrs.frozen
class SourceRequest:
    """What a source is built for: an adapter's symbols, and what the caller (the `tail`
    command's arguments) overrides in the source's own settings (None: the settings' value)."""

    adapter: str
    symbols: tuple[str, ...] = ()
    url: str | None = None
    start: str | None = None
    """``"now"`` (ticks written from now on) or ``"oldest"`` (what the streams still hold)."""
    group: str | None = None
    """A consumer group to share the entries with (each entry to one consumer of it)."""
    consumer: str | None = None
    """This reader's name in `group`."""


@attrs.frozen
class SourceSpec:
    """A tick source: what `register_sources` returns.

    `settings_cls` (an attrs class with defaults for every field, or None) owns the keys under
    `settings_key` (default: `name`); a source may share them with a sink of the same plugin
    (same key and class: the Redis plugin's ``redis.*``). A settings class with a ``consume``
    boolean lets hosts read from the source instead of the exchange (``<key>.consume``).
    `schemes` are the URL schemes `foxtrot-stream tail URL` hands to it.
    `factory(settings, request)` builds one source: `settings` is the plugin's settings object
    (None without a class), `request` a `SourceRequest`; it must not do I/O (`ticks()` does).
    """

    name: str = attrs.field(validator=_is_identifier)
    factory: Callable[[Any, SourceRequest], Source]
    settings_cls: type[Any] | None = None
    settings_key: str | None = None
    schemes: tuple[str, ...] = ()
    description: str = ""

    @property
    def key(self) -> str:
        return self.settings_key or self.name


class BackoffPolicy(Protocol):
    """One connection's reconnection schedule, as its supervisor drives it. The core's
    `foxtrot_stream.policy.backoff.Backoff` (the guide's 1, 2, 4 … 60 s) is one; a policy
    plugin may supply any object with these members (pure: no I/O, no clock of its own)."""

    @property
    def attempts(self) -> int:
        """Reconnection attempts since the last healthy connection."""
        ...

    @property
    def max_attempts(self) -> int:
        """How many it allows before giving up (for the log line when it does)."""
        ...

    def next_delay(self) -> float | None:
        """Count one more attempt and return the seconds to wait before it; None: give up
        (the breaker becomes EXHAUSTED until an operator's reset)."""
        ...

    def reset(self) -> None:
        """The connection proved healthy: start the schedule from the beginning."""
        ...


class BreakerPolicy(Protocol):
    """One connection's circuit breaker, as its supervisor drives it. The core's
    `foxtrot_stream.policy.breaker.CircuitBreaker` is one. It decides only when the WebSocket
    is tried again: a symbol whose connection is down is polled whatever the state."""

    @property
    def state(self) -> BreakerState: ...

    @property
    def consecutive_failures(self) -> int: ...

    @property
    def failure_threshold(self) -> int: ...

    def time_in_state(self) -> float:
        """Seconds since the last transition."""
        ...

    def remaining_open(self) -> float:
        """Seconds until an OPEN breaker allows its probe (0 when not OPEN)."""
        ...

    def poll(self) -> Transition | None:
        """Let time pass (OPEN → HALF_OPEN when due)."""
        ...

    def try_acquire_probe(self) -> bool:
        """In HALF_OPEN, claim the one probe attempt."""
        ...

    def record_success(self) -> Transition | None: ...

    def record_failure(self) -> Transition | None: ...

    def exhaust(self, reason: str = ...) -> Transition | None:
        """The backoff gave up: stay on HTTP until `reset`."""
        ...

    def reset(self) -> Transition | None:
        """An operator's reset: back to CLOSED."""
        ...

    def drain_transitions(self) -> list[Transition]:
        """Every transition since the last call, in order (logged and reported by the owner)."""
        ...


@attrs.frozen
class PolicySpec:
    """A reconnection/breaker policy: builds the two pure state machines for one connection."""

    name: str = attrs.field(validator=_is_identifier)
    make_backoff: Callable[[Settings], BackoffPolicy]
    make_breaker: Callable[[Settings, Callable[[], float]], BreakerPolicy]
    settings_cls: type[Any] | None = None
    description: str = ""


@attrs.frozen
class SymbolCheck:
    """Result of validating symbols against the exchange's instrument list."""

    valid: tuple[str, ...]
    invalid: dict[str, str]
    """symbol → why it was refused (e.g. "not listed on Binance")."""


@attrs.frozen
class PollResult:
    """One HTTP poll: the quotes it returned and what the exchange said about rate limits."""

    ticks: tuple[Tick, ...]
    retry_after: float | None = None
    """Seconds the exchange asked us to wait (429/418 Retry-After), None if it did not."""
    banned: bool = False
    """True on an IP ban (Binance 418): stop polling until `retry_after` has passed."""
    invalid: dict[str, str] = attrs.Factory(dict)
    """symbol → error, for symbols the exchange refused (reported once, not retried)."""
    used_weight: int | None = None
    weight_limit: int | None = None
    """The exchange's request-weight allowance per minute, where it publishes one."""
    requested_ns: int = 0
    """When the request was sent (ns since the epoch): a REST quote is no newer than this."""


class PollError(Exception):
    """A poll failed (network error, timeout, 5xx); the poller retries at its next interval.

    Its message is shown (logs, status): credentials in URLs it quotes are masked."""

    def __init__(self, message: str = "", *args: object) -> None:
        super().__init__(redact(str(message)), *args)


class RateLimited(PollError):
    """A REST request the exchange refused for its rate limit (HTTP 429, or 418: banned)."""

    def __init__(self, message: str, retry_after: float, *, banned: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.banned = banned


class RestHold:
    """When the exchange's REST API may be asked again: one per feed, shared by everything
    that sends it requests (the poller, the clock sync), so that a 429 or a 418 ban seen by one
    stops all of them until its `Retry-After` has passed (requests during a ban lengthen it)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.until = 0.0
        self.reason = ""

    def hold(self, seconds: float, reason: str) -> None:
        until = self.clock() + seconds
        if until > self.until:
            self.until, self.reason = until, reason

    def remaining(self) -> float:
        """Seconds until REST may be asked again (0.0: now)."""
        return max(0.0, self.until - self.clock())


class ConnectionEvents(Protocol):
    """What a frame handler reports back to the connection that owns it.

    Calls are rare (control answers, bad frames, shutdown notices), never one per tick.
    """

    def control_response(self, request_id: int, error: str | None) -> None:
        """The answer to a control request by id (`error` None: accepted). For an exchange
        that answers each request as a whole (Binance)."""

    def subscription_result(self, stream: str, error: str | None) -> None:
        """The answer for one stream (`error` None: subscribed). For an exchange that answers
        per item (OKX): a refused stream's symbol is polled, and its status says why."""

    def malformed(self, reason: str, frame: str | bytes) -> None: ...

    def server_shutdown(self) -> None: ...


class ConnectionListener(Protocol):
    """What a connection reports to the feed that owns it (the `connect` hook's `listener`)."""

    def opened(self) -> None:
        """The handshake succeeded (the guide's "WebSocket connection established")."""

    def first_data(self) -> None:
        """The first valid tick arrived on this connection."""

    def pong(self) -> None:
        """The exchange answered one of our pings (`Connection.ping`)."""

    def malformed(self, reason: str, frame: str | bytes) -> None:
        """A frame could not be decoded; counted, never a failure."""

    def server_shutdown(self) -> None:
        """The exchange announced it will close this connection soon."""

    def rejected(self, streams: Sequence[str], error: str) -> None:
        """The exchange refused to (un)subscribe `streams`."""

    def subscribing(self, streams: Sequence[str]) -> None:
        """A subscription of `streams` on the open connection is being sent (streams not in
        the connection's URL): they carry nothing until the exchange confirms it, so the feed
        does not judge their silence before `subscribed` (or a timeout, for an exchange that
        never confirms)."""

    def subscribed(self, streams: Sequence[str]) -> None:
        """The exchange confirmed the subscription of `streams`."""


#: Decodes one frame (text or binary) received at `received_ns` and calls the sink per tick.
FrameHandler = Callable[[str | bytes, int], None]


@runtime_checkable
class ExchangeAdapter(Protocol):
    """The exchange-specific half of a feed. One instance per feed, used on its event loop."""

    name: str
    display_name: str
    limits: ConnectionLimits

    def streams_for(self, symbol: str) -> tuple[str, ...]:
        """Stream names that carry `symbol` (Binance: bookTicker and trade)."""
        ...

    def open_url(self, streams: Sequence[str]) -> tuple[str, tuple[str, ...]]:
        """URL of a new connection for `streams`, and the streams it still has to subscribe.

        An exchange may take some streams in the URL (Binance: combined-stream URLs); the
        rest are subscribed with control messages, paced by `limits`.
        """
        ...

    def control_message(self, method: str, streams: Sequence[str], request_id: int) -> str:
        """One `SUBSCRIBE`/`UNSUBSCRIBE` request as sent on the wire."""
        ...

    def make_handler(self, sink: TickSink, events: ConnectionEvents) -> FrameHandler:
        """A handler for one connection; the feed calls it directly for every frame."""
        ...

    async def validate_symbols(
        self, session: aiohttp.ClientSession, symbols: Sequence[str]
    ) -> SymbolCheck: ...

    async def poll(self, session: aiohttp.ClientSession, symbols: Sequence[str]) -> PollResult:
        """Best bid/ask for `symbols` over REST, in as few requests as the exchange allows.

        Raises `PollError` when the poll failed (network, 5xx); rate limits and refused
        symbols are answers, reported in the `PollResult`.
        """
        ...


@runtime_checkable
class ServerClock(Protocol):
    """Optional adapter capability: the exchange's clock, for latency offset correction.

    An adapter that has it lets the feed estimate the offset between the local clock and the
    exchange's (see `foxtrot_stream.runtime.metrics.ClockOffset`); one without it gets raw
    latency only.
    """

    async def server_time(self, session: aiohttp.ClientSession) -> int:
        """The exchange's current time in ms since the epoch (one request; `PollError` on
        failure). The caller times the round trip around this call."""
        ...


@runtime_checkable
class SymbolLister(Protocol):
    """Optional adapter capability: every symbol the exchange lists as trading, for
    `foxtrot-stream run --all` (Binance: `exchangeInfo`)."""

    async def trading_symbols(self, session: aiohttp.ClientSession) -> tuple[str, ...]:
        """Every trading symbol, as the feed spells them (`PollError` on failure)."""
        ...


@attrs.frozen
class Instrument:
    """One symbol as the exchange lists it, for hosts that want contract details."""

    symbol: str
    """As the feed spells it (Binance: ``BTCUSDT``)."""
    status: str
    """The exchange's trading status (``TRADING`` when it can be subscribed)."""
    price_tick: float
    """Smallest price increment (Binance: PRICE_FILTER tickSize)."""
    min_qty: float
    """Smallest order quantity (Binance: LOT_SIZE minQty)."""
    lot_size: float
    """Quantity increment (Binance: LOT_SIZE stepSize)."""
    size: float = 1.0
    """Contract multiplier (1 for spot)."""
    product: str = "SPOT"
    """What kind of instrument: ``SPOT``, ``FUTURES``, ``SWAP``, ``OPTION``, …"""

    @property
    def trading(self) -> bool:
        return self.status == "TRADING"


@runtime_checkable
class Instruments(Protocol):
    """Optional adapter capability: every instrument the exchange lists, with its price tick
    and quantity limits (Binance: `exchangeInfo`). Host integrations publish them as
    contracts on connect."""

    async def instruments(self, session: aiohttp.ClientSession) -> Sequence[Instrument]:
        """Every listed instrument, trading or not (`PollError` on failure)."""
        ...


class Connection(Protocol):
    """A live transport connection returned by the `connect` hook.

    It is the wire alone: its supervisor judges its health from `frames` and the pongs it
    reports to its listener, and ends it with `close(failure)` when it is dead.
    """

    frames: int
    """Frames received so far (data and control answers); the supervisor watches it grow."""

    async def run(self) -> None:
        """Open, then receive until closed; raise `TransportFailure` when the connection fails
        (or the failure `close` was given). Symbols (un)subscribed while it was opening are
        (un)subscribed as soon as it is open."""
        ...

    async def ping(self) -> None:
        """Send one heartbeat ping; the answer goes to the listener's `pong()`."""
        ...

    async def subscribe(self, symbols: Sequence[str]) -> None: ...

    async def unsubscribe(self, symbols: Sequence[str]) -> None: ...

    async def close(self, failure: TransportFailure | None = None) -> None:
        """Close: `run()` then returns, or raises `failure` if one is given."""
        ...


class Poller(Protocol):
    """An HTTP polling loop returned by the `fallback` hook, serving a changing symbol set."""

    def add(self, symbols: Sequence[str]) -> None: ...

    def remove(self, symbols: Sequence[str]) -> None: ...

    @property
    def symbols(self) -> frozenset[str]: ...

    async def run(self) -> None: ...

    async def close(self) -> None: ...


@attrs.frozen
class StateChange:
    """A state change a feed reports to `on_state_change` observers (never per tick).

    `kind` says what changed:

    - ``"connection"``: `subject` is ``"connection <id>"``; `new` is ``"up"`` (opened) or
      ``"down"`` (failed or closed), `reason` the failure kind;
    - ``"breaker"``: `subject` is ``"connection <id>"``; `old`/`new` are breaker states
      (``CLOSED``, ``OPEN``, ``HALF_OPEN``, ``EXHAUSTED``);
    - ``"transport"``: `subject` is a symbol; `old`/`new` are ``websocket``, ``http``,
      ``connecting`` or ``none`` (not subscribed).
    """

    adapter: str
    kind: str
    subject: str
    old: str
    new: str
    reason: str
    at: float
    """Wall-clock time of the change, seconds since the epoch."""


@attrs.frozen
class Failure:
    """A transport failure, as passed to `on_failure` (DESIGN §5 lists what counts)."""

    adapter: str
    transport: str
    kind: str
    """connect_failed | connect_timeout | dropped | pong_timeout | no_data | rejected | …"""
    detail: str
    symbols: tuple[str, ...] = ()


class TransportFailure(Exception):
    """Raised by `Connection.run` when the connection fails; carries the failure kind."""

    def __init__(self, kind: str, detail: str) -> None:
        detail = redact(detail)  # shown in logs and status: no credentials of URLs it quotes
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@attrs.frozen
class FeedContext:
    """What a feed hands to the `connect` and `fallback` hooks: everything a transport needs.

    `sink` receives every decoded tick (it is the feed's sequencer); `events` is how a
    transport reports state to its feed; `clock` is monotonic seconds (injected so tests
    can scale time).
    """

    adapter: ExchangeAdapter
    settings: Settings
    session: aiohttp.ClientSession
    sink: TickSink
    clock: Callable[[], float]
    poll_sink: Callable[[Tick, int], None]
    """Receives every polled tick with the time its request was sent (ns since the epoch)."""
    handler_for: Callable[[TickSink, ConnectionEvents], FrameHandler]
    """The `on_message` hook, bound to this feed's adapter: a transport asks once per connection."""
    messages_for: Callable[[str, Sequence[str], Callable[[], int]], list[str]]
    """The `subscribe` hook, bound to this feed's adapter: (method, streams, next_id)."""
    display_name: str = ""
    connect_budgets: dict[str, Any] = attrs.Factory(dict)
    """host → the `ConnectBudget` every connection to that host draws from (shared by feeds)."""
    plugin_settings: Mapping[str, Any] = attrs.Factory(dict)
    """Each plugin's own settings object, by settings key (`http_fallback` → its attrs class)."""
    rest_hold: RestHold | None = None
    """The feed's REST hold: a poller that meets a 429 or 418 holds it (see `RestHold`)."""


def names(items: Sequence[str], shown: int = 8) -> str:
    """Items for a log line: all of them if few, else the first `shown` and how many more
    (`run --all` hands back hundreds of symbols at once)."""
    if len(items) <= shown + 1:
        return ", ".join(items)
    return f"{', '.join(items[:shown])} and {len(items) - shown} more"
