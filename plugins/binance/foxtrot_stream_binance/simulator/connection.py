"""One accepted WebSocket connection: its outbox and writer, heartbeat, limits and lifetime.

Every frame goes through one outbox and one writer task, so control answers, data, fault
frames and the final close leave in the order they were decided, and a slow client only
fills its own outbox instead of blocking the publisher (beyond `max_outbox` it is dropped).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterable, KeysView
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from foxtrot_stream_binance.simulator.config import SimulatorConfig
from foxtrot_stream_binance.simulator.faults import Faults
from foxtrot_stream_binance.simulator.stats import ConnectionStats, SimulatorStats
from foxtrot_stream_binance.simulator.streams import StreamSpec

ABORT = -1
"""Pseudo close code: cut the TCP connection instead of closing the WebSocket."""
_SEND_ERRORS = (ConnectionError, RuntimeError)


class Connection:
    def __init__(
        self,
        cid: int,
        request: web.Request,
        ws: web.WebSocketResponse,
        *,
        combined: bool,
        micro: bool,
        config: SimulatorConfig,
        faults: Faults,
        totals: SimulatorStats,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.id = cid
        self.request = request
        self.ws = ws
        self.combined = combined
        self.micro = micro
        self.config = config
        self.faults = faults
        self.totals = totals
        self.clock = clock
        self.opened_at = clock()
        self.stats = ConnectionStats(cid, request.path_qs, combined, self.opened_at)
        self.specs: dict[str, StreamSpec] = {}
        """Subscribed streams, in subscription order."""
        self.outbox: deque[bytes] = deque()
        self.closing = False
        self.flapping = False
        """Accepted during a one-frame `flap`: it gets one frame of its streams, then the drop."""
        self.flap_drop: asyncio.TimerHandle | None = None
        """Its drop, if accepted during a `flap` with `up` seconds."""
        self._wake = asyncio.Event()
        self._then: tuple[int, str] | None = None
        """How the writer ends once the outbox is flushed: a close code (or ABORT) and reason."""
        self._aborted = False
        self._pings: dict[bytes, float] = {}
        self._ping_seq = 0
        self._incoming: deque[float] = deque()
        self._timers: list[asyncio.TimerHandle] = []
        self._tasks: list[asyncio.Task[Any]] = []

    @property
    def streams(self) -> KeysView[str]:
        """The subscribed stream names (set-like, in subscription order)."""
        return self.specs.keys()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._writer(), name=f"simulator-ws{self.id}-writer"),
            asyncio.create_task(self._heartbeat(), name=f"simulator-ws{self.id}-heartbeat"),
        ]

    # --- sending -----------------------------------------------------------------------------

    def push(self, frame: bytes) -> None:
        if self.closing:
            return
        self.outbox.append(frame)
        if len(self.outbox) > self.config.max_outbox:
            self.totals.slow_consumer_drops += 1
            self.abort("slow consumer")
        elif not self._wake.is_set():
            self._wake.set()

    def push_all(self, frames: Iterable[bytes]) -> None:
        for frame in frames:
            self.push(frame)

    def send_json(self, obj: Any) -> None:
        self.push(orjson.dumps(obj))

    def close(self, code: int, reason: str, *, flush: bool = False, why: str = "") -> None:
        """Close after the writer is done (at once, or once the outbox is flushed)."""
        if self.closing:
            return
        self._ending(why or reason)
        if not flush:
            self.outbox.clear()
        self._then = (code, reason)
        self._wake.set()
        # a client that stopped reading can hold the writer in a drain forever
        loop = asyncio.get_running_loop()
        self._timers.append(loop.call_later(2 * self.config.close_timeout, self._abort_transport))

    def close_later(self, delay: float, code: int, reason: str, why: str) -> None:
        loop = asyncio.get_running_loop()
        self._timers.append(loop.call_later(delay, lambda: self.close(code, reason, why=why)))

    def abort_later(self, delay: float, why: str) -> asyncio.TimerHandle:
        timer = asyncio.get_running_loop().call_later(delay, self.abort, why)
        self._timers.append(timer)
        return timer

    def abort(self, why: str) -> None:
        """Cut the TCP connection now: no close frame, as a network failure looks."""
        self._ending(why)
        self._aborted = True
        transport = self.request.transport
        if transport is not None:
            transport.abort()
        self._wake.set()

    def _ending(self, why: str) -> None:
        self.closing = True
        if self.stats.close_reason is None:
            self.stats.close_reason = why

    async def _writer(self) -> None:
        ws, out, conn_stats, totals = self.ws, self.outbox, self.stats, self.totals
        try:
            while not self._aborted and (self._then is None or out):
                await self._wake.wait()
                self._wake.clear()
                while out:
                    await ws.send_frame(out.popleft(), WSMsgType.TEXT)
                    conn_stats.frames_sent += 1
                    totals.frames_sent += 1
        except _SEND_ERRORS:
            return
        if self._aborted or self._then is None:
            return
        code, reason = self._then
        if code == ABORT:
            self._abort_transport()
            return
        try:
            async with asyncio.timeout(self.config.close_timeout):
                await ws.close(code=code, message=reason.encode())
        except (TimeoutError, *_SEND_ERRORS):
            self._abort_transport()

    def _abort_transport(self) -> None:
        transport = self.request.transport
        if transport is not None:
            transport.abort()

    # --- receiving ---------------------------------------------------------------------------

    def count_incoming(self, now: float) -> bool:
        """Count one incoming message; True if it breaks the incoming limit."""
        q = self._incoming
        q.append(now)
        cutoff = now - self.config.incoming_window
        while q[0] <= cutoff:
            q.popleft()
        self.stats.messages_received += 1
        n = len(q)
        if n > self.stats.max_per_second:
            self.stats.max_per_second = n
            self.totals.max_incoming_per_second = max(self.totals.max_incoming_per_second, n)
        return n > self.config.incoming_limit

    def on_pong(self, payload: bytes, now: float) -> None:
        self.stats.pongs_received += 1
        if self.faults.stalled(now) or payload not in self._pings:
            return  # unsolicited pongs are allowed but keep nothing alive
        self.stats.pongs_matched += 1
        # an echo proves the client alive as of that ping, so earlier pings are settled too
        for key in list(self._pings):
            del self._pings[key]
            if key == payload:
                break

    # --- heartbeat and lifetime ----------------------------------------------------------------

    async def _heartbeat(self) -> None:
        cfg, clock, faults = self.config, self.clock, self.faults
        next_ping = self.opened_at + cfg.ping_interval
        end_of_life = self.opened_at + cfg.lifetime
        while not self.closing:
            now = clock()
            if faults.stalled(now):
                # a hung server neither pings nor times anyone out
                self._pings.clear()
                await asyncio.sleep(min(faults.stall_until - now, 0.25))
                next_ping = max(next_ping, clock())
                continue
            if now >= end_of_life:
                self.close(1000, "Connection lifetime reached", why="lifetime")
                return
            if self._pings and now - next(iter(self._pings.values())) >= cfg.pong_timeout:
                self.totals.pong_timeouts += 1
                self.close(1008, "Pong timeout", why="pong timeout")
                return
            if now >= next_ping:
                await self._ping(now)
                next_ping = now + cfg.ping_interval
            wake = min(next_ping, end_of_life)
            if self._pings:
                wake = min(wake, next(iter(self._pings.values())) + cfg.pong_timeout)
            await asyncio.sleep(max(0.0, wake - clock()))

    async def _ping(self, now: float) -> None:
        self._ping_seq += 1
        payload = f"{time.time_ns() // 1_000_000}-{self._ping_seq}".encode()
        self._pings[payload] = now
        self.stats.pings_sent += 1
        with contextlib.suppress(*_SEND_ERRORS):
            await self.ws.ping(payload)

    # --- teardown --------------------------------------------------------------------------------

    async def teardown(self) -> None:
        """Stop this connection's tasks and timers (called once its handler ends)."""
        self._ending("client")
        self.stats.closed_at = self.clock()
        for timer in self._timers:
            timer.cancel()
        writer, heartbeat = self._tasks or (None, None)
        if heartbeat is not None:
            heartbeat.cancel()
        if writer is not None and self._then is not None and not self._aborted:
            # let a close in progress finish its handshake
            await asyncio.wait({writer}, timeout=self.config.close_timeout + 0.5)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
