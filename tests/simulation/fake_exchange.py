"""A fake exchange on virtual time, for running the real feed logic without sockets.

`FakeExchange` moves a market (each symbol's quote changes at its own rate; version n of a
symbol's quote has bid 1000 + n, so every delivered tick says which update it carries) and
serves it two ways, with the faults a test scripts:

* `FakeConnection`: what the `connect` hook returns instead of the aiohttp WebSocket. It opens
  after a handshake, carries the symbols it is asked for, pushes each update after a small
  latency, answers pings, and fails the way connections fail (refused, dropped, silent,
  stalled, flapping, a refused subscription).
* `FakeAdapter.poll`: the REST snapshot, with its round trip, rate limits (429, 418 bans), 5xx
  answers and slow answers.

The exchange also records what a checker needs: when each update happened, every connection
attempt and how it ended, and when REST could not answer.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from foxtrot_stream.contract.hookspecs import hookimpl
from foxtrot_stream.contract.model import Tick, TransportKind
from foxtrot_stream.contract.records import (
    AdapterSpec,
    Connection,
    ConnectionEvents,
    ConnectionLimits,
    ConnectionListener,
    FeedContext,
    FrameHandler,
    PollError,
    PollResult,
    SymbolCheck,
    TickSink,
    TransportFailure,
)

BASE = 1000.0
NAME = "sim"
WS_LATENCY = 0.002
"""One way, exchange → us: less than half the REST round trip, as on a real network."""
HANDSHAKE = 0.01
REST_ROUND_TRIP = 0.02
JUMP = 10**12

WS, HTTP = TransportKind.WEBSOCKET, TransportKind.HTTP


def version_of(tick: Tick) -> int:
    return int(tick.bid - BASE)


@attrs.define
class Market:
    symbol: str
    rate: float
    version: int = 0
    seq: int = 5_000
    times: list[float] = attrs.Factory(list)
    """times[v]: when version v was published (0: the listing)."""
    jump_next: bool = False


@attrs.define
class Attempt:
    shard: int
    started: float
    opened: float | None = None
    ended: float | None = None
    failed: bool = False
    delivered: float | None = None
    """When it first pushed data."""
    last_frame: float | None = None
    """When it last pushed data."""
    failure: str = ""
    """The kind of the failure that ended it, if any (`TransportFailure.kind`)."""


class FakeExchange:
    def __init__(self, loop: asyncio.AbstractEventLoop, rates: dict[str, float]) -> None:
        self.loop = loop
        self.clock = loop.time
        self.markets = {s: Market(s, r, times=[loop.time()]) for s, r in rates.items()}
        self.open: set[FakeConnection] = set()
        self.attempts: list[Attempt] = []
        # faults: each active until the given (virtual) time
        self.refuse_until = -math.inf
        self.silent_until = -math.inf
        self.stall_until = -math.inf
        self.flap_until = -math.inf
        self.flap_up = 0.0
        self.symbol_silent: dict[str, float] = {}
        self.refused: dict[str, float] = {}
        self.rest_errors: list[tuple[int, float]] = []
        self.rest_slow_until = -math.inf
        self.rest_slow_delay = 0.0
        self.ban_until = -math.inf
        self.rest_bad: list[list[float]] = []
        """[start, end] intervals in which REST could not answer promptly (end inf: open)."""
        self.requests_while_banned = 0
        self.rest_requests = 0
        self.poll_times: list[float] = []
        self.last_fault = -math.inf
        """When the last fault of the WebSocket side ended (or ends)."""
        self.symbol_fault: dict[str, float] = {}
        """The same, for faults of one symbol."""
        for market in self.markets.values():
            self._schedule(market)

    # --- the market --------------------------------------------------------------------------

    def _schedule(self, market: Market) -> None:
        self.loop.call_later(1.0 / market.rate, self._update, market)

    def _update(self, market: Market) -> None:
        now = self.clock()
        market.version += 1
        market.times.append(now)
        if market.jump_next:
            market.jump_next = False
            seq = market.seq + JUMP  # one forward-jumped id; the next ones continue from seq
        else:
            market.seq += 1
            seq = market.seq
        frame = (market.symbol, market.version, seq)
        quiet = now < self.stall_until or now < self.silent_until
        if not quiet and now >= self.symbol_silent.get(market.symbol, -math.inf):
            for conn in list(self.open):
                if market.symbol in conn.subscribed:
                    self.loop.call_later(WS_LATENCY, conn.deliver, frame)
        self._schedule(market)

    @staticmethod
    def tick(symbol: str, version: int, seq: int | None, kind: TransportKind, ns: int) -> Tick:
        bid = BASE + version
        return Tick(NAME, symbol, bid, 1.0, bid + 0.5, 1.0, None, seq, None, None, ns, kind)

    def reset_ids(self, symbol: str) -> None:
        self.markets[symbol].seq = 1
        self._symbol_fault(symbol, 1.0 / self.markets[symbol].rate)

    def jump_ids(self, symbol: str) -> None:
        self.markets[symbol].jump_next = True
        self._symbol_fault(symbol, 1.0 / self.markets[symbol].rate)

    def _fault(self, seconds: float) -> float:
        end = self.clock() + seconds
        self.last_fault = max(self.last_fault, end)
        return end

    def _symbol_fault(self, symbol: str, seconds: float) -> float:
        end = self.clock() + seconds
        self.symbol_fault[symbol] = max(self.symbol_fault.get(symbol, -math.inf), end)
        return end

    # --- faults ------------------------------------------------------------------------------

    def drop_all(self) -> None:
        self._fault(0.0)
        for conn in list(self.open):
            conn.drop("dropped by the exchange")

    def refuse(self, seconds: float) -> None:
        self.refuse_until = self._fault(seconds)

    def silence(self, seconds: float) -> None:
        """Accept-but-silent: connections open, pongs answered, no data."""
        self.silent_until = self._fault(seconds)

    def stall(self, seconds: float) -> None:
        """No data and no pongs, connections left open."""
        self.stall_until = self._fault(seconds)

    def flap(self, seconds: float, up: float) -> None:
        """Each connection accepted in the window streams `up` seconds, then is dropped."""
        self.flap_until = self._fault(seconds + up)
        self.flap_up = up

    def silence_symbol(self, symbol: str, seconds: float) -> None:
        self.symbol_silent[symbol] = self._symbol_fault(symbol, seconds)

    def refuse_subscriptions(self, symbol: str, seconds: float) -> None:
        self.refused[symbol] = self._symbol_fault(symbol, seconds)

    def rest_error(self, status: int, count: int, retry_after: float) -> None:
        self.rest_errors.extend([(status, retry_after)] * count)

    def rest_slow(self, seconds: float, delay: float) -> None:
        self.rest_slow_until = self.clock() + seconds
        self.rest_slow_delay = delay

    # --- connections -------------------------------------------------------------------------

    def subscribe(self, conn: FakeConnection, symbols: Sequence[str]) -> None:
        now = self.clock()
        refused = [s for s in symbols if now < self.refused.get(s, -math.inf)]
        conn.subscribed.update(s for s in symbols if s not in refused)
        if refused:
            conn.listener.rejected(list(refused), "refused by the exchange (scripted)")

    # --- REST ----------------------------------------------------------------------------------

    def _bad(self, start: float, end: float) -> None:
        self.rest_bad.append([start, end])

    def _answered(self, now: float) -> None:
        for interval in self.rest_bad:
            if interval[1] == math.inf:
                interval[1] = now

    async def poll(self, symbols: Sequence[str]) -> PollResult:
        now = self.clock()
        self.rest_requests += 1
        self.poll_times.append(now)
        requested_ns = int(now * 1e9)
        if now < self.ban_until:
            self.requests_while_banned += 1
            return PollResult((), retry_after=self.ban_until - now, banned=True)
        if self.rest_errors:
            status, retry_after = self.rest_errors.pop(0)
            if status == 429:
                self._bad(now, now + retry_after)
                return PollResult((), retry_after=retry_after, requested_ns=requested_ns)
            if status == 418:
                self.ban_until = now + retry_after
                self._bad(now, self.ban_until)
                return PollResult((), retry_after=retry_after, banned=True)
            self._bad(now, math.inf)  # until the next good answer
            raise PollError(f"HTTP {status}")
        delay = REST_ROUND_TRIP
        if now < self.rest_slow_until:
            delay += self.rest_slow_delay
            self._bad(now, now + delay)
        await asyncio.sleep(delay / 2)
        versions = {s: self.markets[s].version for s in symbols if s in self.markets}
        await asyncio.sleep(delay / 2)
        answered = self.clock()
        self._answered(answered)
        received = int(answered * 1e9)
        return PollResult(
            tuple(self.tick(s, v, None, HTTP, received) for s, v in versions.items()),
            requested_ns=requested_ns,
        )


class FakeConnection:
    """The `Connection` the feed's shard supervisors drive in a simulation."""

    def __init__(
        self,
        exchange: FakeExchange,
        context: FeedContext,
        symbols: Sequence[str],
        listener: ConnectionListener,
    ) -> None:
        self.exchange = exchange
        self.context = context
        self.listener = listener
        self.wanted: set[str] = set(symbols)
        self.subscribed: set[str] = set()
        self.frames = 0
        self.is_open = False
        self.attempt = Attempt(getattr(getattr(listener, "shard", None), "id", 0), 0.0)
        self._ended = asyncio.Event()
        self._failure: TransportFailure | None = None
        self._handler: FrameHandler | None = None
        self._sink: Callable[[Tick], None] = self._first

    # the handler's callbacks (ConnectionEvents)
    def control_response(self, request_id: int, error: str | None) -> None: ...

    def malformed(self, reason: str, frame: str | bytes) -> None:
        self.listener.malformed(reason, frame)

    def server_shutdown(self) -> None: ...

    def _first(self, tick: Tick) -> None:
        self._sink = self.context.sink
        self.attempt.delivered = self.exchange.clock()
        self.listener.first_data()
        self.context.sink(tick)

    def _proxy(self, tick: Tick) -> None:
        self._sink(tick)

    async def run(self) -> None:
        ex = self.exchange
        self.attempt.started = ex.clock()
        ex.attempts.append(self.attempt)
        try:
            await asyncio.sleep(HANDSHAKE)
            if self._ended.is_set():  # closed while opening
                if self._failure is not None:
                    raise self._failure
                return
            if ex.clock() < ex.refuse_until:
                self.attempt.failed = True
                raise TransportFailure("connect_failed", "upgrade refused: HTTP 503")
            self.is_open = True
            self.attempt.opened = ex.clock()
            ex.open.add(self)
            self.listener.opened()
            self._handler = self.context.handler_for(self._proxy, self)
            ex.subscribe(self, sorted(self.wanted))
            if ex.clock() < ex.flap_until:
                ex.loop.call_later(ex.flap_up, self.drop, "flap")
            await self._ended.wait()
            if self._failure is not None:
                self.attempt.failed = True
                self.attempt.failure = self._failure.kind
                raise self._failure
        finally:
            self.is_open = False
            ex.open.discard(self)
            self.attempt.ended = ex.clock()

    def deliver(self, frame: tuple[str, int, int]) -> None:
        if not self.is_open or frame[0] not in self.subscribed:
            return
        self.frames += 1
        self.attempt.last_frame = self.exchange.clock()
        assert self._handler is not None
        self._handler(frame, int(self.exchange.clock() * 1e9))

    def drop(self, why: str) -> None:
        if not self._ended.is_set():
            self._failure = TransportFailure("dropped", why)
            self._ended.set()

    async def ping(self) -> None:
        ex = self.exchange
        if self.is_open and ex.clock() >= ex.stall_until:
            ex.loop.call_later(2 * WS_LATENCY, self._pong)

    def _pong(self) -> None:
        if self.is_open and self.exchange.clock() >= self.exchange.stall_until:
            self.listener.pong()

    async def subscribe(self, symbols: Sequence[str]) -> None:
        """On a live connection: sent now, in effect and confirmed a latency later (the feed
        must not judge the symbols' silence in between)."""
        self.wanted.update(symbols)
        if self.is_open:
            self.listener.subscribing(list(symbols))
            self.exchange.loop.call_later(WS_LATENCY, self._confirm, list(symbols))

    def _confirm(self, symbols: list[str]) -> None:
        if not self.is_open:
            return
        self.exchange.subscribe(self, [s for s in symbols if s in self.wanted])
        accepted = [s for s in symbols if s in self.subscribed]
        if accepted:
            self.listener.subscribed(accepted)

    async def unsubscribe(self, symbols: Sequence[str]) -> None:
        self.wanted.difference_update(symbols)
        self.subscribed.difference_update(symbols)

    async def close(self, failure: TransportFailure | None = None) -> None:
        if not self._ended.is_set():
            self._failure = failure
            self._ended.set()


class FakeAdapter:
    name = NAME
    display_name = "SimAdapter"
    limits = ConnectionLimits(max_streams=3, max_control_messages_per_second=5.0, max_lifetime=1e9)

    def __init__(self, exchange: FakeExchange) -> None:
        self.exchange = exchange

    def streams_for(self, symbol: str) -> tuple[str, ...]:
        return (symbol,)

    def open_url(self, streams: Sequence[str]) -> tuple[str, tuple[str, ...]]:
        return "fake://", tuple(streams)

    def control_message(self, method: str, streams: Sequence[str], request_id: int) -> str:
        return f"{method} {' '.join(streams)} {request_id}"

    def make_handler(self, sink: TickSink, events: ConnectionEvents) -> FrameHandler:
        tick = self.exchange.tick

        def handler(frame: Any, received_ns: int) -> None:
            symbol, version, seq = frame
            sink(tick(symbol, version, seq, WS, received_ns))

        return handler

    async def validate_symbols(self, session: Any, symbols: Sequence[str]) -> SymbolCheck:
        await asyncio.sleep(REST_ROUND_TRIP)
        known = self.exchange.markets
        return SymbolCheck(
            tuple(s for s in symbols if s in known),
            {s: f"{s} is not listed" for s in symbols if s not in known},
        )

    async def poll(self, session: Any, symbols: Sequence[str]) -> PollResult:
        return await self.exchange.poll(symbols)


class SimPlugin:
    """Registers the `sim` adapter and answers the `connect` hook with fake connections for
    whichever `FakeExchange` the running test set."""

    def __init__(self) -> None:
        self.exchange: FakeExchange | None = None

    def _current(self) -> FakeExchange:
        assert self.exchange is not None, "set SimPlugin.exchange first"
        return self.exchange

    @hookimpl
    def register_adapters(self) -> list[AdapterSpec]:
        return [
            AdapterSpec(
                name=NAME,
                display_name="SimAdapter",
                settings_cls=None,
                factory=lambda _settings: FakeAdapter(self._current()),
                description="A fake exchange on virtual time (tests only).",
            )
        ]

    @hookimpl(tryfirst=True)
    def connect(
        self,
        context: FeedContext,
        transport: str,
        symbols: Sequence[str],
        listener: ConnectionListener,
    ) -> Connection | None:
        if context.adapter.name != NAME:
            return None
        return FakeConnection(self._current(), context, symbols, listener)
