"""The built-in WebSocket transport (aiohttp), returned by the core's `connect` hookimpl.

One connection carries one shard's symbols. This is the wire alone: open, read frames into the
adapter's handler, answer the exchange's pings, send ours when its supervisor asks (`ping`),
(un)subscribe, close. Its health (pong timeouts, silence, backoff) is judged by the shard
supervisor, on the frame count and pongs this connection reports. Every frame it sends (pings,
pongs, control messages) goes through a sliding one-second window sized below the exchange's
limit on incoming messages, so a burst of subscriptions can never get the connection dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

import aiohttp

from foxtrot_stream.contract.model import Tick
from foxtrot_stream.contract.records import ConnectionListener, FeedContext, TransportFailure

#: Window over which the send budget is counted; a little over a second, so that clock skew
#: between us and the exchange cannot put one message too many into its one-second window.
SEND_WINDOW = 1.1

if TYPE_CHECKING:
    #: A client WebSocket opened with `decode_text=False`: text frames arrive as bytes.
    _WS = aiohttp.ClientWebSocketResponse[Literal[False]]


class SendWindow:
    """At most `limit` sends in any `period` seconds (a sliding window, not a token bucket,
    whose burst could put 2× the limit into one second)."""

    def __init__(
        self, limit: int, period: float = SEND_WINDOW, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = max(1, limit)
        self.period = period
        self._clock = clock
        self._sent: deque[float] = deque()

    def delay(self) -> float:
        """Seconds to wait before the next send is allowed (0 if allowed now)."""
        now = self._clock()
        while self._sent and self._sent[0] <= now - self.period:
            self._sent.popleft()
        if len(self._sent) < self.limit:
            return 0.0
        return self._sent[0] + self.period - now

    def record(self) -> None:
        self._sent.append(self._clock())

    async def acquire(self) -> None:
        while (wait := self.delay()) > 0:  # noqa: ASYNC110 - a deadline, not a condition
            await asyncio.sleep(wait)
        self.record()


class ConnectBudget:
    """Paces connection attempts to one host: many shards reconnecting at once must not spend
    the exchange's per-IP allowance (Binance: 300 attempts per 5 minutes) and get it banned.

    The exchange stamps an attempt when it arrives, somewhere between our decision to connect
    and the end of the handshake. So an attempt counts from the moment we start it until
    `window` seconds after it ended: whatever the delays, no `window` of the exchange's clock
    can hold more than `limit` of our attempts.
    """

    def __init__(self, host: str, limit: int, window: float) -> None:
        self.host = host
        self.limit = max(1, limit)
        self.period = window
        self._in_flight = 0
        self._ended: deque[float] = deque()
        self.attempts = 0
        self.waits = 0
        self.waited = 0.0

    def delay(self) -> float:
        now = time.monotonic()
        while self._ended and self._ended[0] <= now - self.period:
            self._ended.popleft()
        if self._in_flight + len(self._ended) < self.limit:
            return 0.0
        if self._ended:
            return self._ended[0] + self.period - now
        return 0.05  # every slot is an attempt still under way: wait for one to end

    async def acquire(self, log: logging.Logger) -> None:
        delay = self.delay()
        if delay > 0:
            self.waits += 1
            self.waited += delay
            log.warning(
                "connection budget: %d attempts to %s in the last %gs; next attempt in %.1fs",
                self.limit,
                self.host,
                self.period,
                delay,
            )
            while (delay := self.delay()) > 0:  # noqa: ASYNC110 - a deadline, not a condition
                await asyncio.sleep(delay)
        self._in_flight += 1
        self.attempts += 1

    def release(self) -> None:
        """The attempt ended (connected or failed): it counts for one more window."""
        self._in_flight -= 1
        self._ended.append(time.monotonic())


#: Budgets shared by every feed of this process, by host (the exchange counts per IP).
BUDGETS: dict[str, ConnectBudget] = {}


def budget_for(
    budgets: dict[str, ConnectBudget], url: str, limit: int, window: float
) -> ConnectBudget:
    host = urlsplit(url).hostname or url
    budget = budgets.get(host)
    if budget is None:
        budget = budgets[host] = ConnectBudget(host, limit, window)
    return budget


class WebSocketConnection:
    """One WebSocket connection for one shard of a feed's symbols."""

    def __init__(
        self, context: FeedContext, symbols: Sequence[str], listener: ConnectionListener
    ) -> None:
        self.context = context
        self.adapter = context.adapter
        self.listener = listener
        self.symbols = tuple(symbols)
        interval = context.settings.websocket.heartbeat.interval
        self.connect_timeout = max(1.0, min(10.0, 2 * interval))
        limit = int(self.adapter.limits.max_control_messages_per_second)
        # one message per second is left for our pongs to the exchange's pings
        self.window = SendWindow(limit - 1)
        self.frames = 0
        """Frames received (data and control answers): the supervisor watches it grow."""
        self.got_data = False
        self.opened_at: float | None = None
        self._ws: _WS | None = None
        self._failure: TransportFailure | None = None
        self._closing = False
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[str, tuple[str, ...], set[int]]] = {}
        """request id → (method, the streams of the whole call, its ids not answered yet)."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._deliver = context.sink
        self._sink: Callable[[Tick], None] = self._first_sink
        heartbeat = getattr(self.adapter, "app_heartbeat", None)
        self._app_ping: str | None = heartbeat.message if heartbeat is not None else None
        self._app_pong: bytes | None = heartbeat.answer.encode() if heartbeat is not None else None

    # --- the connection's own frame-handler callbacks (ConnectionEvents) ---------------------

    def control_response(self, request_id: int, error: str | None) -> None:
        method, streams, outstanding = self._pending.pop(request_id, ("", (), set()))
        outstanding.discard(request_id)
        if error is not None:
            self.listener.rejected(streams, f"{method or 'request'} {request_id}: {error}")
        elif method == "SUBSCRIBE" and not outstanding:  # every message of the call answered
            self.listener.subscribed(streams)

    def subscription_result(self, stream: str, error: str | None) -> None:
        if error is not None:
            self.listener.rejected([stream], error)
        else:
            self.listener.subscribed([stream])

    def malformed(self, reason: str, frame: str | bytes) -> None:
        self.listener.malformed(reason, frame)

    def server_shutdown(self) -> None:
        self.listener.server_shutdown()

    def _first_sink(self, tick: Tick) -> None:
        # Only until the first tick: then the handler's sink is swapped for the feed's own.
        self.got_data = True
        self._sink = self._deliver
        self.listener.first_data()
        self._deliver(tick)

    def _sink_proxy(self, tick: Tick) -> None:
        self._sink(tick)

    # --- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> None:
        url_streams = [s for sym in self.symbols for s in self.adapter.streams_for(sym)]
        url, rest = self.adapter.open_url(url_streams)
        ws = await self._open(url)
        self._ws = ws
        if self._closing or self._failure is not None:  # closed while it was opening
            await ws.close()
            if self._failure is not None:
                raise self._failure
            return
        self.opened_at = time.monotonic()
        self.listener.opened()
        handler = self.context.handler_for(self._sink_proxy, self)
        # symbols may have been added or removed while the handshake was under way: the URL
        # has the symbols of when it was built, the connection must carry those of now
        wanted = [s for sym in self.symbols for s in self.adapter.streams_for(sym)]
        in_url = set(url_streams) - set(rest)
        missing = [s for s in wanted if s not in in_url]
        keep = set(wanted)
        gone = [s for s in url_streams if s in in_url and s not in keep]
        if missing:
            self._spawn(self._send_control("SUBSCRIBE", missing))
        if gone:
            self._spawn(self._send_control("UNSUBSCRIBE", gone))
        try:
            await self._read(ws, handler)
        finally:
            await self._shutdown(ws)

    async def _open(self, url: str) -> _WS:
        limits = self.adapter.limits
        budget = budget_for(
            self.context.connect_budgets, url, limits.max_connects, limits.connect_window
        )
        display = self.context.display_name or self.adapter.display_name
        await budget.acquire(logging.getLogger(f"{display}WebSocket"))
        try:
            return await self._handshake(url)
        finally:
            budget.release()

    async def _handshake(self, url: str) -> _WS:
        try:
            async with asyncio.timeout(self.connect_timeout):
                return await self.context.session.ws_connect(
                    url,
                    autoping=False,
                    autoclose=True,
                    max_msg_size=16 * 1024 * 1024,
                    timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
                    ssl=True,  # always verify certificates on wss://
                    # text frames reach the handler as bytes: JSON decoders (orjson, msgspec)
                    # read bytes and check the UTF-8 of what they parse, so aiohttp's decode
                    # to str is pure cost, and bad UTF-8 is the adapter's malformed frame to
                    # count, not a dropped connection
                    decode_text=False,
                )
        except aiohttp.WSServerHandshakeError as exc:
            raise TransportFailure("connect_failed", f"upgrade refused: HTTP {exc.status}") from exc
        except TimeoutError as exc:
            raise TransportFailure(
                "connect_timeout", f"no handshake within {self.connect_timeout:g}s"
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise TransportFailure("connect_failed", f"{type(exc).__name__}: {exc}") from exc

    async def _read(self, ws: _WS, handler: Callable[[str | bytes, int], None]) -> None:
        text, binary = aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY
        now_ns = time.time_ns
        receive = ws.receive
        app_pong = self._app_pong  # None unless the adapter declares an application heartbeat
        # Data frames aiohttp has already parsed are taken from its queue with `read()`, which
        # returns at once, instead of one `ws.receive()` (a coroutine and its checks) per
        # frame: less CPU per frame in bursts, nothing lost one frame per packet
        # (benchmarks/per_packet.py). A control frame at the head of the queue still goes
        # through `receive()`, which keeps aiohttp's close bookkeeping. The queue is private
        # to aiohttp (`ws._reader._buffer`, tests/test_websocket_drain.py checks its shape):
        # without it, every frame goes through `receive()`.
        reader = getattr(ws, "_reader", None)
        queued: deque[tuple[aiohttp.WSMessage, int]] | tuple[()] = ()
        if isinstance(buffer := getattr(reader, "_buffer", None), deque):
            queued = buffer
        read = reader.read if reader is not None else receive
        while True:
            msg = await receive()
            kind = msg.type
            if kind is text or kind is binary:
                if app_pong is not None and msg.data == app_pong:
                    self.listener.pong()
                    continue
                self.frames += 1
                handler(msg.data, now_ns())
                while queued and ((head := queued[0][0].type) is text or head is binary):
                    data = (await read()).data
                    if app_pong is not None and data == app_pong:
                        self.listener.pong()
                        continue
                    self.frames += 1
                    handler(data, now_ns())
            elif kind is aiohttp.WSMsgType.PING:
                # pongs use the one message per second the send window leaves free
                await ws.pong(msg.data)
            elif kind is aiohttp.WSMsgType.PONG:
                self.listener.pong()
            elif self._failure is not None:
                raise self._failure
            elif self._closing:
                return
            elif kind is aiohttp.WSMsgType.ERROR:
                raise TransportFailure("dropped", f"connection error: {ws.exception()}")
            else:  # CLOSE / CLOSING / CLOSED
                reason = f", {msg.extra}" if kind is aiohttp.WSMsgType.CLOSE and msg.extra else ""
                raise TransportFailure(
                    "dropped", f"closed by the exchange (code {ws.close_code}{reason})"
                )

    async def ping(self) -> None:
        """A protocol ping, or the adapter's application heartbeat (`AppHeartbeat`); the
        exchange's answer reaches `listener.pong()`."""
        ws = self._ws
        if ws is None or ws.closed:
            return
        await self.window.acquire()
        if self._app_ping is not None:
            await ws.send_str(self._app_ping)
        else:
            await ws.ping(os.urandom(4))

    async def _send_control(self, method: str, streams: Sequence[str]) -> None:
        ws = self._ws
        if ws is None or ws.closed:
            return
        allocated: list[int] = []

        def next_id() -> int:
            allocated.append(next(self._ids))
            return allocated[-1]

        messages = self.context.messages_for(method, streams, next_id)
        outstanding = set(allocated)
        for request_id in allocated:
            self._pending[request_id] = (method, tuple(streams), outstanding)
        if method == "SUBSCRIBE":
            self.listener.subscribing(streams)
        for message in messages:
            await self.window.acquire()
            if ws.closed:
                return
            await ws.send_str(message)

    async def subscribe(self, symbols: Sequence[str]) -> None:
        new = [s for s in symbols if s not in self.symbols]
        self.symbols += tuple(new)
        streams = [st for sym in new for st in self.adapter.streams_for(sym)]
        if streams:
            await self._send_control("SUBSCRIBE", streams)

    async def unsubscribe(self, symbols: Sequence[str]) -> None:
        gone = set(symbols)
        self.symbols = tuple(s for s in self.symbols if s not in gone)
        streams = [st for sym in symbols for st in self.adapter.streams_for(sym)]
        if streams:
            await self._send_control("UNSUBSCRIBE", streams)

    async def close(self, failure: TransportFailure | None = None) -> None:
        """Close; with `failure`, `run()` raises it (the supervisor judged the connection dead),
        without, `run()` returns."""
        if failure is not None and self._failure is None:
            self._failure = failure
        else:
            self._closing = True
        ws = self._ws
        if ws is not None and not ws.closed:
            code = aiohttp.WSCloseCode.GOING_AWAY if failure is not None else None
            if code is None:
                await ws.close()
            else:
                await ws.close(code=code, message=failure.kind.encode() if failure else b"")

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)  # type: ignore[call-overload]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _shutdown(self, ws: _WS) -> None:
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            # our own heartbeat/control tasks, just cancelled: closing reports the connection's
            # fate, not theirs
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if not ws.closed:
            await ws.close()
