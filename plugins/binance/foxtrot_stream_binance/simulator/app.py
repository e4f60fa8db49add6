"""A Binance-Spot-compatible market-data server on 127.0.0.1, for tests, demos and benchmarks.

It speaks the wire format of `binance-protocol.md`: raw `/ws/<stream>` and combined
`/stream?streams=…` endpoints, the `SUBSCRIBE` family with Binance's answers and error codes,
server pings with a pong deadline, the 5-messages-per-second incoming limit (close 1008
"Too many requests"), 1024 streams per connection, a connection lifetime, and the REST
endpoints the adapter polls with request weights, `X-MBX-USED-WEIGHT-1M`, 429/418 with
`Retry-After` and `-1121` for unknown symbols. Faults are scripted through `faults`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import time
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
import orjson
from aiohttp import WSCloseCode, WSMsgType, web

from foxtrot_stream_binance.simulator.faults import MALFORMED_FRAMES, Faults
from foxtrot_stream_binance.simulator.prices import PricePath

LOOPBACK = "127.0.0.1"
METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
STREAM_KINDS = ("bookTicker", "trade")
_STREAM = re.compile(r"^([a-z0-9]+)@(bookTicker|trade)$")
_ID = re.compile(r"^[A-Za-z0-9\-_]{1,36}$")


def synthetic_symbols(n: int) -> tuple[str, ...]:
    """N distinct symbols (`S0000USDT`, …) for load tests with thousands of symbols."""
    return tuple(f"S{i:04d}USDT" for i in range(n))


@attrs.frozen
class SimulatorConfig:
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT")
    rate: float = 10.0
    """Book updates per second per symbol."""
    rates: dict[str, float] = attrs.Factory(dict)
    """Per-symbol overrides of `rate` (0: silent)."""
    trade_ratio: float = 0.3
    """Trades per book update, on average."""
    seed: int = 1
    port: int = 0
    ping_interval: float = 20.0
    pong_timeout: float = 60.0
    lifetime: float = 24 * 3600.0
    max_streams: int = 1024
    incoming_limit: int = 5
    weight_limit: int = 6000
    weight_window: float = 60.0
    ban_after: int = 3
    """Requests refused with 429 before the IP is banned with 418."""
    ban_seconds: float = 120.0
    tick_interval: float = 0.01
    """How often the publisher wakes; frames due in between are sent together."""
    shutdown_grace: float = 1.0
    """Seconds between a `serverShutdown` event and the close."""


@attrs.define
class SimulatorStats:
    """What the simulator saw: tests assert against this rather than against our own client."""

    connection_attempts: int = 0
    attempt_times: list[float] = attrs.Factory(list)
    refused_upgrades: int = 0
    connections_opened: int = 0
    control_messages: int = 0
    max_incoming_per_second: int = 0
    rate_limit_disconnects: int = 0
    pong_timeouts: int = 0
    max_streams_per_connection: int = 0
    frames_sent: int = 0
    rest_requests: int = 0
    rest_by_path: dict[str, int] = attrs.Factory(dict)
    rest_throttled: int = 0
    rest_banned: int = 0
    subscribe_requests: list[tuple[int, int]] = attrs.Factory(list)
    """(connection id, streams in the request) for each SUBSCRIBE received."""


class _Client:
    """One accepted WebSocket connection."""

    def __init__(self, cid: int, ws: web.WebSocketResponse, combined: bool) -> None:
        self.id = cid
        self.ws = ws
        self.combined = combined
        self.streams: set[str] = set()
        self.incoming: deque[float] = deque()
        self.ping_payload: bytes | None = None
        self.ping_sent_at = 0.0
        self.opened_at = time.monotonic()
        self.tasks: list[asyncio.Task[Any]] = []
        self.closing = False
        self.sent = 0


class Simulator:
    """Start with `await sim.start()` (or `async with Simulator(...)`); stop with `stop()`."""

    def __init__(self, config: SimulatorConfig | None = None, *, host: str = LOOPBACK) -> None:
        if host not in (LOOPBACK, "localhost", "::1"):
            raise ValueError(f"the simulator binds loopback only, not {host!r}")
        self.config = config or SimulatorConfig()
        self.host = host
        self.faults = Faults()
        self.stats = SimulatorStats()
        self.paths = {s: PricePath.create(s, self.config.seed) for s in self.config.symbols}
        self.clients: dict[int, _Client] = {}
        self.port = 0
        self._ids = itertools.count(1)
        self._subscribers: dict[str, set[_Client]] = {}
        self._runner: web.AppRunner | None = None
        self._publisher: asyncio.Task[None] | None = None
        self._weight = 0
        self._weight_window_start = time.monotonic()
        self._throttled_in_row = 0
        self._banned_until = 0.0
        # a seeded phase per symbol, so that symbols at the same rate do not update in lockstep
        self._due: dict[str, float] = {s: p.rng.random() for s, p in self.paths.items()}
        self._encoded_book: dict[str, bytes] = {}

    # --- lifecycle -------------------------------------------------------------------------

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> Simulator:
        app = web.Application()
        app.router.add_get("/ws", self._ws_handler)
        app.router.add_get("/ws/{streams:.*}", self._ws_handler)
        app.router.add_get("/stream", self._ws_handler)
        app.router.add_get("/api/v3/ping", self._ping)
        app.router.add_get("/api/v3/time", self._time)
        app.router.add_get("/api/v3/exchangeInfo", self._exchange_info)
        app.router.add_get("/api/v3/ticker/bookTicker", self._book_ticker)
        app.router.add_get("/api/v3/ticker/price", self._price)
        app.router.add_get("/api/v3/depth", self._depth)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.config.port, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self._publisher = asyncio.create_task(self._publish(), name="simulator-publisher")
        return self

    async def stop(self) -> None:
        if self._publisher is not None:
            self._publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publisher
            self._publisher = None
        for client in list(self.clients.values()):
            await self._close(client, WSCloseCode.GOING_AWAY, b"simulator stopping")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Simulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- faults (the Python API a test drives) ------------------------------------------------

    def drop_all(self) -> int:
        """Drop every connection at once, as a network failure would (no close handshake)."""
        clients = list(self.clients.values())
        for client in clients:
            self._abort(client)
        return len(clients)

    def refuse_upgrades(self, seconds: float) -> None:
        self.faults.refuse_until = self.faults.clock() + seconds

    def stall(self, seconds: float) -> None:
        self.faults.stall_until = self.faults.clock() + seconds

    def silence(self, seconds: float, symbols: Iterable[str] | None = None) -> None:
        self.faults.silence_until = self.faults.clock() + seconds
        self.faults.silence_symbols = frozenset(symbols) if symbols is not None else None

    def malformed(self, count: int) -> None:
        self.faults.malformed_pending += count

    def flap(self, seconds: float) -> None:
        self.faults.flap_until = self.faults.clock() + seconds

    def slow_rest(self, seconds: float, delay: float) -> None:
        self.faults.slow_rest_until = self.faults.clock() + seconds
        self.faults.slow_rest_delay = delay

    def rest_errors(self, status: int, count: int, retry_after: float = 1.0) -> None:
        self.faults.rest_error_status = status
        self.faults.rest_error_count = count
        self.faults.rest_error_retry_after = retry_after

    def cut_lifetime(self) -> int:
        """End every connection now, as the 24-hour cut would (a normal close)."""
        clients = list(self.clients.values())
        for client in clients:
            self._spawn(client, self._close(client, WSCloseCode.OK, b"lifetime reached"))
        return len(clients)

    def server_shutdown(self, grace: float | None = None) -> int:
        """Send `serverShutdown` to every connection, then close each after `grace` seconds."""
        grace = self.config.shutdown_grace if grace is None else grace
        clients = list(self.clients.values())
        for client in clients:
            self._spawn(client, self._shutdown_notice(client, grace))
        return len(clients)

    def settings(self) -> dict[str, Any]:
        """vt_setting.json keys that point the Binance adapter at this simulator."""
        return {"binance.ws_url": self.ws_url, "binance.rest_url": self.rest_url}

    def outage(self, seconds: float) -> None:
        """Drop everything and refuse new connections for `seconds` (REST keeps answering)."""
        self.refuse_upgrades(seconds)
        self.drop_all()

    def clear(self) -> None:
        self.faults.clear()

    # --- WebSocket ---------------------------------------------------------------------------

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        now = time.monotonic()
        self.stats.connection_attempts += 1
        self.stats.attempt_times.append(now)
        if self.faults.refusing():
            self.stats.refused_upgrades += 1
            return web.Response(status=503, text="Service Unavailable")
        combined = request.path == "/stream"
        if combined:
            names = [n for n in request.query.get("streams", "").split("/") if n]
        else:
            tail = request.match_info.get("streams", "")
            names = [n for n in tail.split("/") if n]
        bad = [n for n in names if not self._valid_stream(n)]
        if bad:
            return web.json_response(
                {"code": -1121, "msg": f"Invalid stream: {bad[0]}"}, status=400
            )
        if len(names) > self.config.max_streams:
            return web.json_response({"code": -1101, "msg": "Too many streams."}, status=400)
        ws = web.WebSocketResponse(autoping=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        client = _Client(next(self._ids), ws, combined)
        self.clients[client.id] = client
        self.stats.connections_opened += 1
        self._add_streams(client, names)
        if self.faults.flapping():
            await self._flap(client)
            return ws
        client.tasks.append(asyncio.create_task(self._pinger(client)))
        client.tasks.append(asyncio.create_task(self._lifetime(client)))
        try:
            await self._read(client)
        finally:
            self._forget(client)
            for task in client.tasks:
                task.cancel()
        return ws

    def _valid_stream(self, name: str) -> bool:
        m = _STREAM.match(name)
        return m is not None and m.group(1).upper() in self.paths

    def _add_streams(self, client: _Client, names: Iterable[str]) -> None:
        for name in names:
            client.streams.add(name)
            self._subscribers.setdefault(name, set()).add(client)
        self.stats.max_streams_per_connection = max(
            self.stats.max_streams_per_connection, len(client.streams)
        )

    def _remove_streams(self, client: _Client, names: Iterable[str]) -> None:
        for name in names:
            client.streams.discard(name)
            self._subscribers.get(name, set()).discard(client)

    def _forget(self, client: _Client) -> None:
        self._remove_streams(client, list(client.streams))
        self.clients.pop(client.id, None)

    async def _flap(self, client: _Client) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            for name in sorted(client.streams)[:1]:
                path = self.paths[name.split("@", 1)[0].upper()]
                await client.ws.send_str(self._frame(client, name, self._book_payload_of(path)))
        self._abort(client)
        self._forget(client)

    async def _read(self, client: _Client) -> None:
        ws = client.ws
        async for msg in ws:
            if self._over_limit(client):
                self.stats.rate_limit_disconnects += 1
                await self._close(client, WSCloseCode.POLICY_VIOLATION, b"Too many requests")
                return
            if msg.type == WSMsgType.TEXT:
                self.stats.control_messages += 1
                await self._control(client, msg.data)
            elif msg.type == WSMsgType.PING:
                if not self.faults.stalled():  # a stalled server answers nothing
                    await ws.pong(msg.data)
            elif msg.type == WSMsgType.PONG:
                if not self.faults.stalled() and msg.data == client.ping_payload:
                    client.ping_payload = None
            elif msg.type == WSMsgType.BINARY:
                await self._error(
                    client, None, 3, "Invalid JSON: expected value at line 1 column 1"
                )

    def _over_limit(self, client: _Client) -> bool:
        now = time.monotonic()
        q = client.incoming
        q.append(now)
        while q and q[0] <= now - 1.0:
            q.popleft()
        self.stats.max_incoming_per_second = max(self.stats.max_incoming_per_second, len(q))
        return len(q) > self.config.incoming_limit

    async def _control(self, client: _Client, text: str) -> None:
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            line, col = _json_position(text, exc.pos)
            await self._error(
                client, None, 3, f"Invalid JSON: expected value at line {line} column {col}"
            )
            return
        if not isinstance(msg, dict):
            await self._error(client, None, 2, "Invalid request: expected an object")
            return
        request_id = msg.get("id")
        if not _valid_id(request_id):
            await self._error(
                client,
                None,
                2,
                "Invalid request: request ID must be an integer, a string of at most 36 "
                "characters, or null",
            )
            return
        method = msg.get("method")
        if method is None:
            await self._error(client, request_id, 2, "Invalid request: missing field `method`")
            return
        if method not in METHODS:
            expected = ", ".join(f"`{m}`" for m in METHODS)
            await self._error(
                client,
                request_id,
                2,
                f"Invalid request: unknown variant `{method}`, expected one of {expected}",
            )
            return
        params = msg.get("params", [])
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                await self._error(
                    client, request_id, 2, "Invalid request: params must be a list of stream names"
                )
                return
            if method == "SUBSCRIBE":
                self.stats.subscribe_requests.append((client.id, len(params)))
                if any(not self._valid_stream(p) for p in params):
                    await self._error(client, request_id, 2, "Invalid request: invalid stream")
                    await self._close(client, WSCloseCode.POLICY_VIOLATION, b"Invalid stream")
                    return
                if len(client.streams | set(params)) > self.config.max_streams:
                    await self._error(client, request_id, 2, "Invalid request: too many streams")
                    return
                self._add_streams(client, params)
            else:
                self._remove_streams(client, params)
            await self._send_json(client, {"result": None, "id": request_id})
        elif method == "LIST_SUBSCRIPTIONS":
            await self._send_json(client, {"result": sorted(client.streams), "id": request_id})
        elif method == "SET_PROPERTY":
            if not isinstance(params, list) or len(params) != 2 or not isinstance(params[0], str):
                await self._error(
                    client, request_id, 2, "Invalid request: property name must be a string"
                )
            elif params[0] != "combined":
                await self._error(client, request_id, 0, "Unknown property")
            elif not isinstance(params[1], bool):
                await self._error(client, request_id, 1, "Invalid value type: expected Boolean")
            else:
                client.combined = params[1]
                await self._send_json(client, {"result": None, "id": request_id})
        else:  # GET_PROPERTY
            if not isinstance(params, list) or len(params) != 1 or not isinstance(params[0], str):
                await self._error(
                    client, request_id, 2, "Invalid request: property name must be a string"
                )
            elif params[0] != "combined":
                await self._error(client, request_id, 0, "Unknown property")
            else:
                await self._send_json(client, {"result": client.combined, "id": request_id})

    async def _error(self, client: _Client, request_id: Any, code: int, msg: str) -> None:
        await self._send_json(client, {"error": {"code": code, "msg": msg}, "id": request_id})

    async def _send_json(self, client: _Client, obj: Any) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await client.ws.send_str(orjson.dumps(obj).decode())

    async def _pinger(self, client: _Client) -> None:
        """A ping every `ping_interval`; no pong echoing it within `pong_timeout` → close."""
        interval, timeout = self.config.ping_interval, self.config.pong_timeout
        seq = 0
        next_ping = time.monotonic() + interval
        while not client.ws.closed:
            now = time.monotonic()
            if client.ping_payload is not None and now - client.ping_sent_at >= timeout:
                self.stats.pong_timeouts += 1
                await self._close(client, WSCloseCode.POLICY_VIOLATION, b"Pong timeout")
                return
            if now >= next_ping:
                next_ping = now + interval
                if client.ping_payload is None and not self.faults.stalled():
                    seq += 1
                    client.ping_payload = str(seq).encode()
                    client.ping_sent_at = now
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await client.ws.ping(client.ping_payload)
            await asyncio.sleep(min(interval, timeout) / 4)

    async def _lifetime(self, client: _Client) -> None:
        await asyncio.sleep(self.config.lifetime)
        await self._close(client, WSCloseCode.OK, b"lifetime reached")

    async def _shutdown_notice(self, client: _Client, grace: float) -> None:
        event = {"e": "serverShutdown", "E": int(time.time() * 1000)}
        obj = {"stream": "!serverShutdown", "data": event} if client.combined else event
        await self._send_json(client, obj)
        await asyncio.sleep(grace)
        await self._close(client, WSCloseCode.GOING_AWAY, b"server shutdown")

    async def _close(self, client: _Client, code: int, message: bytes) -> None:
        if client.closing:
            return
        client.closing = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.ws.close(code=code, message=message), timeout=2.0)
        self._forget(client)

    def _abort(self, client: _Client) -> None:
        client.closing = True
        transport = client.ws._req.transport if client.ws._req is not None else None
        if transport is not None:
            transport.abort()
        self._forget(client)

    def _spawn(self, client: _Client, coro: Any) -> None:
        client.tasks.append(asyncio.create_task(coro))

    # --- publishing ----------------------------------------------------------------------------

    def _trade_payload(self, symbol: str) -> bytes:
        p = self.paths[symbol]
        now = int(time.time() * 1000)
        return orjson.dumps(
            {
                "e": "trade",
                "E": now,
                "s": symbol,
                "t": p.trade_id,
                "p": f"{p.last:.8f}",
                "q": f"{p.last_qty:.8f}",
                "T": now,
                "m": p.last == p.bid,
                "M": True,
            }
        )

    @staticmethod
    def _frame(client: _Client, stream: str, payload: bytes) -> str:
        if client.combined:
            return f'{{"stream":"{stream}","data":{payload.decode()}}}'
        return payload.decode()

    async def _publish(self) -> None:
        """Advance every price path at its rate and fan each frame out, encoded once."""
        cfg = self.config
        last = time.monotonic()
        while True:
            await asyncio.sleep(cfg.tick_interval)
            now = time.monotonic()
            dt, last = now - last, now
            batches: dict[_Client, list[str]] = {}
            for symbol, path in self.paths.items():
                rate = cfg.rates.get(symbol, cfg.rate)
                if rate <= 0:
                    continue
                self._due[symbol] += rate * dt
                while self._due[symbol] >= 1.0:
                    self._due[symbol] -= 1.0
                    path.step_book()
                    self._fan_out(
                        f"{symbol.lower()}@bookTicker", self._book_payload_of(path), batches, symbol
                    )
                    if path.rng.random() < cfg.trade_ratio:
                        path.step_trade()
                        self._fan_out(
                            f"{symbol.lower()}@trade", self._trade_payload(symbol), batches, symbol
                        )
            if self.faults.malformed_pending:
                count, self.faults.malformed_pending = self.faults.malformed_pending, 0
                for client in self.clients.values():
                    frames = batches.setdefault(client, [])
                    frames.extend(MALFORMED_FRAMES[i % len(MALFORMED_FRAMES)] for i in range(count))
            for client, frames in batches.items():
                if client.closing or client.ws.closed:
                    continue
                try:
                    for frame in frames:
                        await client.ws.send_str(frame)
                    self.stats.frames_sent += len(frames)
                except (ConnectionError, RuntimeError):
                    continue

    def _book_payload_of(self, path: PricePath) -> bytes:
        return orjson.dumps(
            {
                "u": path.update_id,
                "s": path.symbol,
                "b": f"{path.bid:.8f}",
                "B": f"{path.bid_qty:.8f}",
                "a": f"{path.ask:.8f}",
                "A": f"{path.ask_qty:.8f}",
            }
        )

    def _fan_out(
        self, stream: str, payload: bytes, batches: dict[_Client, list[str]], symbol: str
    ) -> None:
        subscribers = self._subscribers.get(stream)
        if not subscribers or self.faults.stalled() or self.faults.silenced(symbol):
            return
        raw = payload.decode()
        wrapped = f'{{"stream":"{stream}","data":{raw}}}'
        for client in subscribers:
            batches.setdefault(client, []).append(wrapped if client.combined else raw)

    # --- REST ----------------------------------------------------------------------------------

    async def _rest(self, request: web.Request, weight: int) -> web.Response | None:
        """Account a request; an error response if it is refused, None if it may proceed."""
        self.stats.rest_requests += 1
        path = request.path
        self.stats.rest_by_path[path] = self.stats.rest_by_path.get(path, 0) + 1
        delay = self.faults.rest_delay()
        if delay:
            await asyncio.sleep(delay)
        now = time.monotonic()
        if now - self._weight_window_start >= self.config.weight_window:
            self._weight_window_start = now
            self._weight = 0
        if now < self._banned_until:
            self.stats.rest_banned += 1
            return self._limited(418, self._banned_until - now, "IP banned until later.")
        forced = self.faults.take_rest_error()
        if forced in (429, 418):
            retry = self.faults.rest_error_retry_after
            if forced == 418:
                self.stats.rest_banned += 1
            else:
                self.stats.rest_throttled += 1
            return self._limited(forced, retry, "Too many requests.")
        if forced:
            return web.json_response(
                {"code": -1000, "msg": "An unknown error occurred."}, status=forced
            )
        self._weight += weight
        if self._weight > self.config.weight_limit:
            self._throttled_in_row += 1
            retry = self._weight_window_start + self.config.weight_window - now
            if self._throttled_in_row > self.config.ban_after:
                self._banned_until = now + self.config.ban_seconds
                self.stats.rest_banned += 1
                return self._limited(418, self.config.ban_seconds, "IP banned.")
            self.stats.rest_throttled += 1
            return self._limited(429, retry, "Too many requests; current limit exceeded.")
        self._throttled_in_row = 0
        return None

    def _limited(self, status: int, retry_after: float, msg: str) -> web.Response:
        resp = web.json_response({"code": -1003, "msg": msg}, status=status)
        resp.headers["Retry-After"] = (
            str(max(1, round(retry_after))) if retry_after >= 1 else f"{retry_after:g}"
        )
        self._headers(resp)
        return resp

    def _headers(self, resp: web.Response) -> web.Response:
        resp.headers["X-MBX-USED-WEIGHT-1M"] = str(self._weight)
        resp.headers["X-MBX-USED-WEIGHT"] = str(self._weight)
        return resp

    def _json(self, obj: Any, status: int = 200) -> web.Response:
        return self._headers(
            web.Response(body=orjson.dumps(obj), status=status, content_type="application/json")
        )

    def _symbols_param(self, request: web.Request) -> tuple[list[str] | None, web.Response | None]:
        """`symbol=X` or `symbols=["A","B"]` or neither (None: all)."""
        if "symbol" in request.query and "symbols" in request.query:
            return None, self._json({"code": -1101, "msg": "Too many parameters."}, 400)
        if "symbol" in request.query:
            wanted = [request.query["symbol"]]
        elif "symbols" in request.query:
            try:
                wanted = orjson.loads(request.query["symbols"])
            except orjson.JSONDecodeError:
                return None, self._json(
                    {"code": -1100, "msg": "Illegal characters found in parameter 'symbols'."}, 400
                )
            if not isinstance(wanted, list) or not all(isinstance(s, str) for s in wanted):
                return None, self._json(
                    {"code": -1100, "msg": "Illegal characters found in parameter 'symbols'."}, 400
                )
        else:
            return None, None
        if any(s not in self.paths for s in wanted):
            return None, self._json({"code": -1121, "msg": "Invalid symbol."}, 400)
        return wanted, None

    async def _ping(self, request: web.Request) -> web.Response:
        return await self._rest(request, 1) or self._json({})

    async def _time(self, request: web.Request) -> web.Response:
        return await self._rest(request, 1) or self._json({"serverTime": int(time.time() * 1000)})

    async def _exchange_info(self, request: web.Request) -> web.Response:
        refused = await self._rest(request, 20)
        if refused:
            return refused
        return self._json(
            {
                "timezone": "UTC",
                "serverTime": int(time.time() * 1000),
                "rateLimits": [
                    {
                        "rateLimitType": "REQUEST_WEIGHT",
                        "interval": "MINUTE",
                        "intervalNum": 1,
                        "limit": self.config.weight_limit,
                    },
                    {
                        "rateLimitType": "ORDERS",
                        "interval": "SECOND",
                        "intervalNum": 10,
                        "limit": 100,
                    },
                    {
                        "rateLimitType": "RAW_REQUESTS",
                        "interval": "MINUTE",
                        "intervalNum": 5,
                        "limit": 61000,
                    },
                ],
                "exchangeFilters": [],
                "symbols": [
                    {
                        "symbol": s,
                        "status": "TRADING",
                        "baseAsset": s[:-4] if s.endswith("USDT") else s[:3],
                        "quoteAsset": "USDT" if s.endswith("USDT") else s[3:],
                    }
                    for s in self.paths
                ],
            }
        )

    async def _book_ticker(self, request: web.Request) -> web.Response:
        single = "symbol" in request.query
        refused = await self._rest(request, 2 if single else 4)
        if refused:
            return refused
        wanted, error = self._symbols_param(request)
        if error:
            return error
        rows = [self._book_row(s) for s in (wanted if wanted is not None else self.paths)]
        return self._json(rows[0] if single else rows)

    def _book_row(self, symbol: str) -> dict[str, str]:
        p = self.paths[symbol]
        return {
            "symbol": symbol,
            "bidPrice": f"{p.bid:.8f}",
            "bidQty": f"{p.bid_qty:.8f}",
            "askPrice": f"{p.ask:.8f}",
            "askQty": f"{p.ask_qty:.8f}",
        }

    async def _price(self, request: web.Request) -> web.Response:
        single = "symbol" in request.query
        refused = await self._rest(request, 2 if single else 4)
        if refused:
            return refused
        wanted, error = self._symbols_param(request)
        if error:
            return error
        rows = [
            {"symbol": s, "price": f"{self.paths[s].last:.8f}"}
            for s in (wanted if wanted is not None else self.paths)
        ]
        return self._json(rows[0] if single else rows)

    async def _depth(self, request: web.Request) -> web.Response:
        try:
            limit = int(request.query.get("limit", "100"))
        except ValueError:
            limit = -1
        if not 1 <= limit <= 5000:
            return self._json(
                {"code": -1100, "msg": "Illegal characters found in parameter 'limit'."}, 400
            )
        weight = 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
        refused = await self._rest(request, weight)
        if refused:
            return refused
        symbol = request.query.get("symbol")
        if symbol is None:
            return self._json(
                {
                    "code": -1102,
                    "msg": "Mandatory parameter 'symbol' was not sent, was empty/null, "
                    "or malformed.",
                },
                400,
            )
        if symbol not in self.paths:
            return self._json({"code": -1121, "msg": "Invalid symbol."}, 400)
        p = self.paths[symbol]
        levels = min(limit, 20)
        bids = [[f"{p.bid - i * p.tick_size:.8f}", f"{p.bid_qty:.8f}"] for i in range(levels)]
        asks = [[f"{p.ask + i * p.tick_size:.8f}", f"{p.ask_qty:.8f}"] for i in range(levels)]
        return self._json({"lastUpdateId": p.update_id, "bids": bids, "asks": asks})


def _valid_id(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    return isinstance(value, str) and _ID.match(value) is not None


def _json_position(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return line, col


async def start_simulator(symbols: Sequence[str], rate: float) -> Simulator:
    """Start a simulator for `symbols` at `rate` updates/s each (the demo's entry point)."""
    return await Simulator(SimulatorConfig(symbols=tuple(symbols), rate=rate)).start()
