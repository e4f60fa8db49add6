"""The WebSocket side: upgrades, control messages, who is subscribed to what, and fan-out.

Endpoints: raw `/ws/<stream>[/<stream>…]`, bare `/ws` (subscribe later), and combined
`/stream?streams=a/b/c` (each event wrapped as `{"stream":…,"data":…}`); `timeUnit=MICROSECOND`
switches event times to microseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
from collections import deque
from collections.abc import Callable, Collection

from aiohttp import WSMsgType, web

from foxtrot_stream_binance.simulator import control, streams
from foxtrot_stream_binance.simulator.config import SimulatorConfig
from foxtrot_stream_binance.simulator.connection import ABORT, Connection
from foxtrot_stream_binance.simulator.faults import Faults
from foxtrot_stream_binance.simulator.market import Market
from foxtrot_stream_binance.simulator.stats import SimulatorStats
from foxtrot_stream_binance.simulator.streams import StreamSpec

_COUNTED = (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.PING, WSMsgType.PONG)


class StreamServer:
    def __init__(
        self,
        config: SimulatorConfig,
        market: Market,
        faults: Faults,
        stats: SimulatorStats,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.market = market
        self.faults = faults
        self.stats = stats
        self.clock = clock
        self.clients: dict[int, Connection] = {}
        """Open connections by id."""
        self.subscribers: dict[str, set[Connection]] = {}
        self.depth_streams: dict[str, StreamSpec] = {}
        """Partial-depth streams someone is subscribed to (they are published on a timer)."""
        self._ids = itertools.count(1)
        self._counted: deque[float] = deque()
        """Times of the attempts counted against `attempt_limit`."""
        self._idle = asyncio.Event()
        self._idle.set()
        self._micro = 0
        """Open connections asking for microsecond times (when none, skip encoding them)."""
        self._held: set[asyncio.Future[bool]] = set()
        """Upgrades held by `slow_handshake`: True lets one go ahead early, False refuses it."""

    # --- upgrade ---------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        now = self.clock()
        refused = self._admit(now)
        if refused is not None:
            return refused
        combined = request.path.startswith("/stream")
        if combined:
            names = [n for n in request.query.get("streams", "").split("/") if n]
        else:
            names = [n for n in request.match_info.get("streams", "").split("/") if n]
        specs = [streams.parse_stream(n, self.market.by_stream_symbol) for n in names]
        if any(s is None for s in specs):
            return web.json_response({"code": 2, "msg": control.INVALID_STREAM}, status=400)
        if len(set(names)) > self.config.max_streams:
            return web.json_response({"code": 2, "msg": control.TOO_MANY_STREAMS}, status=400)
        ws = web.WebSocketResponse(
            autoping=False, compress=False, timeout=self.config.close_timeout, max_msg_size=1 << 16
        )
        if not ws.can_prepare(request).ok:
            return web.Response(status=400, text="Expected a WebSocket upgrade")
        hold = self.faults.handshake_delay(now)
        if hold > 0:
            self.stats.held_handshakes += 1
            self.stats.handshake_holds.append(hold)
            if not await self._hold(hold):
                return web.Response(status=503, text="Service Unavailable")
            transport = request.transport
            if transport is None or transport.is_closing():
                return web.Response(status=408)  # the client gave up waiting: nobody to answer
            now = self.clock()  # the connection opens now: later faults are judged from here
        await ws.prepare(request)
        conn = Connection(
            next(self._ids),
            request,
            ws,
            combined=combined,
            micro=request.query.get("timeUnit") in ("MICROSECOND", "microsecond"),
            config=self.config,
            faults=self.faults,
            totals=self.stats,
            clock=self.clock,
        )
        self.clients[conn.id] = conn
        self._idle.clear()
        self._micro += conn.micro
        self.stats.connections[conn.id] = conn.stats
        self.stats.connections_opened += 1
        valid = [s for s in specs if s is not None]
        if valid:  # the URL's streams count as the first subscription
            conn.stats.subscriptions.append(tuple(names))
            self.stats.subscribe_requests.append((conn.id, len(names)))
            refusing = self.faults.refusing_symbols(now)
            if refusing and any(s.symbol in refusing for s in valid):
                # no answer goes with a URL: the refused streams just never come
                self.stats.refused_subscriptions += 1
                valid = [s for s in valid if s.symbol not in refusing]
            self._subscribe(conn, valid)
        conn.start()
        if self.faults.flapping(now):
            if self.faults.flap_up > 0:
                conn.flap_drop = conn.abort_later(self.faults.flap_up, "flap")
            else:
                conn.flapping = True
                if valid:
                    self._flap(conn, valid[0])
        pending = self.faults.take_malformed()
        if pending:
            conn.push_all(streams.malformed(self._symbol_of(conn), conn.combined, pending))
        try:
            await self._read(conn)
        finally:
            self._forget(conn)
            await conn.teardown()
        return ws

    async def _hold(self, seconds: float) -> bool:
        """Wait `seconds` before answering an accepted upgrade; False if the simulator is
        stopping (the upgrade is then refused rather than opened behind `close_all`)."""
        gate: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._held.add(gate)
        try:
            async with asyncio.timeout(seconds):
                return await gate
        except TimeoutError:
            return True
        finally:
            self._held.discard(gate)

    def _release(self, proceed: bool) -> None:
        for gate in self._held:
            if not gate.done():
                gate.set_result(proceed)

    def _admit(self, now: float) -> web.Response | None:
        st, cfg = self.stats, self.config
        st.connection_attempts += 1
        st.attempt_times.append(now)
        counted = self._counted
        while counted and counted[0] <= now - cfg.attempt_window:
            counted.popleft()
        if cfg.attempt_limit and len(counted) >= cfg.attempt_limit:
            # refused attempts are not counted, so a client that backs off gets back in
            st.attempts_over_limit += 1
            retry = counted[0] + cfg.attempt_window - now
            return web.json_response(
                {"code": -1003, "msg": "Too many connection attempts."},
                status=429,
                headers={"Retry-After": str(max(1, math.ceil(retry)))},
            )
        counted.append(now)
        if self.faults.refusing(now):
            st.refused_upgrades += 1
            return web.Response(status=503, text="Service Unavailable")
        return None

    # --- reading -----------------------------------------------------------------------------

    async def _read(self, conn: Connection) -> None:
        ws = conn.ws
        async for msg in ws:
            now = self.clock()
            if msg.type in _COUNTED and conn.count_incoming(now):
                self.stats.rate_limit_disconnects += 1
                conn.close(1008, "Too many requests", why="too many requests")
                return
            if msg.type is WSMsgType.TEXT:
                self._control(conn, msg.data, now)
            elif msg.type is WSMsgType.PING:
                conn.stats.pings_received += 1
                if not self.faults.stalled(now):
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await ws.pong(msg.data)
            elif msg.type is WSMsgType.PONG:
                conn.on_pong(bytes(msg.data), now)
            elif msg.type is WSMsgType.BINARY and not self.faults.stalled(now):
                conn.send_json(
                    control.Error(None, 3, "Invalid JSON: expected value at line 1 column 1").body()
                )
            if conn.closing:
                return

    def _control(self, conn: Connection, text: str, now: float) -> None:
        conn.stats.control_messages += 1
        self.stats.control_messages += 1
        if self.faults.stalled(now):
            return  # a hung server answers nothing
        req = control.parse(text)
        if isinstance(req, control.Error):
            conn.send_json(req.body())
        elif req.method == "SUBSCRIBE":
            self._on_subscribe(conn, req, now)
        elif req.method == "UNSUBSCRIBE":
            self._unsubscribe(conn, [n for n in req.params if n in conn.streams])
            conn.send_json(control.result(req.id))
        elif req.method == "LIST_SUBSCRIPTIONS":
            conn.send_json(control.result(req.id, list(conn.streams)))
        elif req.method == "SET_PROPERTY":
            conn.combined = bool(req.params[1])
            conn.send_json(control.result(req.id))
        else:
            conn.send_json(control.result(req.id, conn.combined))

    def _on_subscribe(self, conn: Connection, req: control.Request, now: float) -> None:
        names = [str(n) for n in req.params]
        self.stats.subscribe_requests.append((conn.id, len(names)))
        conn.stats.subscriptions.append(tuple(names))
        specs = [streams.parse_stream(n, self.market.by_stream_symbol) for n in names]
        valid = [s for s in specs if s is not None]
        if len(valid) < len(specs):
            # live servers close after an invalid stream: one bad name costs the whole socket
            conn.send_json(control.Error(req.id, 2, control.INVALID_STREAM).body())
            conn.close(1008, "Invalid stream", flush=True, why="invalid stream")
            return
        refusing = self.faults.refusing_symbols(now)
        if refusing and any(s.symbol in refusing for s in valid):
            # all or nothing, and unlike an invalid stream the connection stays open
            self.stats.refused_subscriptions += 1
            conn.send_json(control.Error(req.id, 2, control.REFUSED).body())
            return
        if len(conn.streams | set(names)) > self.config.max_streams:
            conn.send_json(control.Error(req.id, 2, control.TOO_MANY_STREAMS).body())
            return
        conn.send_json(control.result(req.id))
        self._subscribe(conn, valid)
        if conn.flapping and valid:
            self._flap(conn, valid[0])

    # --- subscriptions ---------------------------------------------------------------------------

    def _subscribe(self, conn: Connection, specs: list[StreamSpec]) -> None:
        for spec in specs:
            if spec.name in conn.streams:
                continue
            conn.specs[spec.name] = spec
            self.subscribers.setdefault(spec.name, set()).add(conn)
            if spec.kind == "depth":
                self.depth_streams[spec.name] = spec
        n = len(conn.streams)
        conn.stats.streams = n
        conn.stats.max_streams = max(conn.stats.max_streams, n)
        self.stats.max_streams_per_connection = max(self.stats.max_streams_per_connection, n)

    def _unsubscribe(self, conn: Connection, names: Collection[str]) -> None:
        for name in names:
            conn.specs.pop(name, None)
            subs = self.subscribers.get(name)
            if subs is None:
                continue
            subs.discard(conn)
            if not subs:
                del self.subscribers[name]
                self.depth_streams.pop(name, None)
        conn.stats.streams = len(conn.streams)

    def _forget(self, conn: Connection) -> None:
        self._unsubscribe(conn, list(conn.streams))
        if self.clients.pop(conn.id, None) is not None:
            self._micro -= conn.micro
        if not self.clients:
            self._idle.set()

    def _symbol_of(self, conn: Connection) -> str:
        first = next(iter(conn.specs.values()), None)
        return first.symbol if first is not None else next(iter(self.market.paths))

    def _flap(self, conn: Connection, spec: StreamSpec) -> None:
        payload = streams.current(spec, self.market.paths[spec.symbol], conn.micro)
        conn.push(streams.wrap(spec.name, payload) if conn.combined else payload)
        conn.close(ABORT, "flap", flush=True, why="flap")

    # --- fan-out (the publisher calls this for every event with subscribers) -----------------

    def fan_out(
        self, subs: Collection[Connection], stream: str, raw: bytes, raw_us: bytes | None = None
    ) -> None:
        """Send one event, encoded once per form (raw/combined × ms/µs), to its subscribers."""
        wrapped: bytes | None = None
        wrapped_us: bytes | None = None
        for conn in subs:
            if raw_us is not None and conn.micro:
                if conn.combined:
                    wrapped_us = wrapped_us or streams.wrap(stream, raw_us)
                    conn.push(wrapped_us)
                else:
                    conn.push(raw_us)
            elif conn.combined:
                wrapped = wrapped or streams.wrap(stream, raw)
                conn.push(wrapped)
            else:
                conn.push(raw)

    def wants_micro(self, subs: Collection[Connection]) -> bool:
        return self._micro > 0 and any(c.micro for c in subs)

    # --- one-off faults (the `FaultTarget` protocol) ---------------------------------------------

    def drop_all(self) -> int:
        clients = list(self.clients.values())
        for conn in clients:
            conn.abort("dropped")
            self._forget(conn)
        return len(clients)

    def cut_all(self) -> int:
        for conn in self.clients.values():
            conn.close(1000, "Connection lifetime reached", why="lifetime")
        return len(self.clients)

    def shutdown_notice(self, grace: float) -> int:
        now_us = self.config.now_us()
        for conn in self.clients.values():
            event = streams.server_shutdown(now_us, conn.micro)
            conn.push(streams.wrap("!serverShutdown", event) if conn.combined else event)
            conn.close_later(grace, 1001, "Server shutdown", why="server shutdown")
        return len(self.clients)

    def send_malformed(self, count: int) -> int:
        for conn in self.clients.values():
            conn.push_all(streams.malformed(self._symbol_of(conn), conn.combined, count))
        return len(self.clients)

    def end_faults(self) -> None:
        """`Faults.clear()`: held upgrades go ahead now, and flapping connections stay."""
        self._release(True)
        for conn in self.clients.values():
            conn.flapping = False
            if conn.flap_drop is not None:
                conn.flap_drop.cancel()
                conn.flap_drop = None

    async def close_all(self, grace: float) -> None:
        """Close every connection; cut those still open after `grace` seconds."""
        self._release(False)
        for conn in self.clients.values():
            conn.close(1001, "Simulator stopping", why="stopped")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self._idle.wait()
        for conn in list(self.clients.values()):
            conn.abort("stopped")
            self._forget(conn)
