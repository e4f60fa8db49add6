"""An OKX-v5-compatible public market-data server on 127.0.0.1, for tests, demos and plugin
authors: the `bbo-tbt` channel, the text heartbeat, per-item subscription answers, and the REST
endpoints the adapter uses, with scripted faults.

* WebSocket `/ws/v5/public`: `{"op": "subscribe", "args": [{"channel": "bbo-tbt", "instId": …}]}`
  is answered per arg, `{"event": "subscribe", "arg": …, "connId": …}` or an error event naming
  the arg in its message; pushes `{"arg": …, "data": [{"asks", "bids", "ts", "seqId"}]}` with
  prices and sizes as strings; `ping` → `pong`; a connection on which the client sent nothing
  for `idle` seconds (OKX: 30) is closed.
* REST: `/api/v5/market/tickers?instType=SPOT`, `/api/v5/market/ticker?instId=…`,
  `/api/v5/public/instruments?instType=SPOT`, `/api/v5/public/time`, in OKX's envelope
  (`{"code": "0", "msg": "", "data": [...]}`); a rate limit is HTTP 429 with code 50011.

Prices follow a seeded random walk per symbol, so a run is reproducible; every update of a
symbol's top of book takes the next `seqId`, and every connection gets the same frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections.abc import Coroutine, Iterable, Sequence
from typing import Any

import attrs
from aiohttp import WSMsgType, web

LOOPBACK = "127.0.0.1"
CHANNEL = "bbo-tbt"
BASE_PRICES = {"BTC": 60000.0, "ETH": 3000.0, "SOL": 150.0, "OKB": 50.0}
GARBAGE: tuple[str | bytes, ...] = (
    b"\xff\xfe not utf-8",
    "{not json",
    "[]",
    '{"arg": {"channel": "bbo-tbt", "instId": "BTC-USDT"}, "data": [{"asks": [], "bids": []}]}',
    '{"arg": {"channel": "bbo-tbt", "instId": "BTC-USDT"}, "data": [{"asks": [["x", "1"]], '
    '"bids": [["1", "1"]], "ts": "1", "seqId": 1}]}',
)


@attrs.define
class Stats:
    connections: int = 0
    refused_upgrades: int = 0
    app_pings: int = 0
    idle_closes: int = 0
    subscribe_errors: int = 0
    rest_requests: int = 0
    rest_limited: int = 0
    frames_sent: int = 0


@attrs.define
class _Book:
    inst_id: str
    tick: float
    mid: float
    seq: int = 0
    bid: float = 0.0
    ask: float = 0.0
    bid_sz: float = 1.0
    ask_sz: float = 1.0
    ts: int = 0
    rng: random.Random = attrs.field(factory=random.Random)

    def step(self) -> None:
        self.mid = max(self.tick * 10, self.mid + self.rng.choice((-2, -1, 0, 1, 2)) * self.tick)
        spread = self.rng.randint(1, 3) * self.tick
        self.bid, self.ask = round(self.mid - spread / 2, 8), round(self.mid + spread / 2, 8)
        self.bid_sz = round(self.rng.uniform(0.01, 5.0), 4)
        self.ask_sz = round(self.rng.uniform(0.01, 5.0), 4)
        self.seq += self.rng.randint(1, 3)  # per instrument, increasing, not contiguous
        self.ts = time.time_ns() // 1_000_000

    def push(self) -> str:
        data = {
            "asks": [[_s(self.ask), _s(self.ask_sz), "0", "2"]],
            "bids": [[_s(self.bid), _s(self.bid_sz), "0", "3"]],
            "ts": str(self.ts),
            "seqId": self.seq,
        }
        return json.dumps({"arg": {"channel": CHANNEL, "instId": self.inst_id}, "data": [data]})

    def ticker(self) -> dict[str, str]:
        return {
            "instType": "SPOT",
            "instId": self.inst_id,
            "last": _s(round(self.mid, 8)),
            "lastSz": "0.01",
            "askPx": _s(self.ask),
            "askSz": _s(self.ask_sz),
            "bidPx": _s(self.bid),
            "bidSz": _s(self.bid_sz),
            "ts": str(self.ts),
        }


def _s(value: float) -> str:
    return f"{value:.8f}".rstrip("0").rstrip(".")


@attrs.define(eq=False)
class _Client:
    ws: web.WebSocketResponse
    request: web.Request
    conn_id: str
    subscribed: set[str] = attrs.field(factory=set)
    heard: float = attrs.field(factory=time.monotonic)
    flapping: bool = False

    def abort(self) -> None:
        """Drop without a close handshake, as a failed network does."""
        if self.request.transport is not None:
            self.request.transport.abort()


class OkxSimulator:
    """`async with OkxSimulator(symbols) as sim:` or `await sim.start()` … `await sim.stop()`."""

    def __init__(
        self,
        symbols: Sequence[str] = ("BTC-USDT", "ETH-USDT"),
        *,
        rate: float = 10.0,
        idle: float = 30.0,
        suspended: Sequence[str] = ("LUNA-USDT",),
        port: int = 0,
        seed: int = 7,
    ) -> None:
        self.rate, self.idle, self.port = rate, idle, port
        self.suspended = tuple(s.upper() for s in suspended)
        self.books: dict[str, _Book] = {}
        for i, symbol in enumerate(s.upper() for s in symbols):
            base = BASE_PRICES.get(symbol.split("-")[0], 100.0 + 10 * i)
            tick = 0.1 if base >= 1000 else 0.01
            book = _Book(symbol, tick, base, rng=random.Random(seed * 1000 + i))
            book.step()
            self.books[symbol] = book
        self.stats = Stats()
        self.clients: set[_Client] = set()
        self.refused: set[str] = set()
        """Listed symbols whose subscription is refused (`refuse_subscription`)."""
        self._until: dict[str, float] = {}  # fault → when it ends (monotonic)
        self._silenced: set[str] | None = None  # None: every symbol
        self._flap_up = 0.0
        self._rest_errors: list[int] = []  # one HTTP status per request still to fail
        self._runner: web.AppRunner | None = None
        self._task: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Future[None]] = set()

    def _spawn(self, send: Coroutine[Any, Any, None]) -> None:
        future = asyncio.ensure_future(send)
        self._sends.add(future)
        future.add_done_callback(self._sends.discard)

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def ws_url(self) -> str:
        return f"ws://{LOOPBACK}:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def settings(self) -> dict[str, Any]:
        """vt_setting.json keys that point the OKX adapter at this simulator."""
        return {"okx.ws_url": f"{self.ws_url}/ws/v5/public", "okx.rest_url": self.rest_url}

    async def start(self) -> OkxSimulator:
        app = web.Application()
        app.router.add_get("/ws/v5/public", self._ws)
        app.router.add_get("/api/v5/market/tickers", self._tickers)
        app.router.add_get("/api/v5/market/ticker", self._tickers)
        app.router.add_get("/api/v5/public/instruments", self._instruments)
        app.router.add_get("/api/v5/public/time", self._time)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        try:
            await web.TCPSite(runner, LOOPBACK, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        self._task = asyncio.create_task(self._publish(), name="okx-simulator")
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for client in list(self.clients):
            client.abort()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> OkxSimulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- faults ------------------------------------------------------------------------------

    def _active(self, fault: str) -> bool:
        return time.monotonic() < self._until.get(fault, 0.0)

    def _window(self, fault: str, seconds: float) -> None:
        self._until[fault] = time.monotonic() + seconds

    def drop_all(self) -> int:
        """Drop every connection (no close handshake); returns how many."""
        clients = list(self.clients)
        for client in clients:
            client.abort()
        return len(clients)

    def refuse_upgrades(self, seconds: float) -> None:
        """Answer WebSocket upgrades with HTTP 503 for `seconds`."""
        self._window("refuse", seconds)

    def stall(self, seconds: float) -> None:
        """Connections stay open but get nothing: no data, no pong, no answers."""
        self._window("stall", seconds)

    def silence(self, seconds: float, symbols: Iterable[str] | None = None) -> None:
        """No data (for `symbols`, or all) for `seconds`; pongs and answers go on."""
        self._silenced = None if symbols is None else {s.upper() for s in symbols}
        self._window("silence", seconds)

    def garbage(self, count: int) -> int:
        """Send `count` malformed frames to every connection; returns how many were sent."""
        sent = 0
        for client in list(self.clients):
            for i in range(count):
                frame = GARBAGE[i % len(GARBAGE)]
                send = client.ws.send_bytes if isinstance(frame, bytes) else client.ws.send_str
                self._spawn(send(frame))  # type: ignore[arg-type]
                sent += 1
        return sent

    def rate_limit(self, count: int, status: int = 429) -> None:
        """Answer the next `count` REST requests with `status` (429: OKX's code 50011)."""
        self._rest_errors += [status] * count

    def flap(self, seconds: float, up: float = 0.0) -> None:
        """For `seconds`, accept each connection, let it deliver one frame (or stream `up`
        seconds), then drop it."""
        self._flap_up = up
        self._window("flap", seconds)

    def notice(self, grace: float = 1.0) -> int:
        """OKX's service-upgrade notice (64008) to every connection, dropped `grace` s later."""
        body = json.dumps({"event": "notice", "code": "64008", "msg": "service upgrade"})
        loop = asyncio.get_running_loop()
        for client in list(self.clients):
            self._spawn(client.ws.send_str(body))
            loop.call_later(grace, client.abort)
        return len(self.clients)

    def outage(self, seconds: float) -> None:
        """Drop every connection and refuse new ones for `seconds` (REST keeps answering)."""
        self.refuse_upgrades(seconds)
        self.drop_all()

    def refuse_subscription(self, symbol: str) -> None:
        self.refused.add(symbol.upper())

    def clear(self) -> None:
        self._until.clear()
        self._rest_errors.clear()
        self.refused.clear()

    # --- the market --------------------------------------------------------------------------

    async def _publish(self) -> None:
        interval = 1.0 / self.rate
        while True:
            await asyncio.sleep(interval)
            stalled = self._active("stall")
            silenced = self._silenced if self._active("silence") else set()
            now = time.monotonic()
            for symbol, book in self.books.items():
                book.step()
                if stalled or silenced is None or symbol in silenced:
                    continue
                frame = book.push()
                for client in list(self.clients):
                    if symbol in client.subscribed:
                        await self._send(client, frame)
                        if client.flapping and self._flap_up <= 0:
                            client.abort()
            for client in list(self.clients):
                if now - client.heard > self.idle:  # OKX's rule: nothing from the client
                    self.stats.idle_closes += 1
                    self.clients.discard(client)
                    await client.ws.close(code=4004, message=b"no data received in 30s")

    async def _send(self, client: _Client, frame: str) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await client.ws.send_str(frame)
            self.stats.frames_sent += 1

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        if self._active("refuse"):
            self.stats.refused_upgrades += 1
            return web.Response(status=503, text="service unavailable (simulated)")
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        client = _Client(ws, request, uuid.uuid4().hex[:8], flapping=self._active("flap"))
        if client.flapping and self._flap_up > 0:
            asyncio.get_running_loop().call_later(self._flap_up, client.abort)
        self.stats.connections += 1
        self.clients.add(client)
        try:
            async for msg in ws:
                client.heard = time.monotonic()
                if self._active("stall") or msg.type is not WSMsgType.TEXT:
                    continue  # protocol pings go unanswered, as the toy exchange's
                if msg.data == "ping":
                    self.stats.app_pings += 1
                    await ws.send_str("pong")
                else:
                    for answer in self._answers(msg.data, client):
                        await ws.send_str(json.dumps(answer))
        finally:
            self.clients.discard(client)
        return ws

    def _answers(self, text: str, client: _Client) -> list[dict[str, Any]]:
        def error(code: str, msg: str) -> dict[str, Any]:
            self.stats.subscribe_errors += 1
            return {"event": "error", "code": code, "msg": msg, "connId": client.conn_id}

        try:
            request = json.loads(text)
            op, args = request["op"], request["args"]
            if op not in ("subscribe", "unsubscribe") or not isinstance(args, list):
                raise ValueError(op)
        except (ValueError, KeyError, TypeError):
            return [error("60012", f"Invalid request: {text[:200]}")]
        answers = []
        for arg in args:
            channel = arg.get("channel") if isinstance(arg, dict) else None
            inst = arg.get("instId") if isinstance(arg, dict) else None
            if channel != CHANNEL or inst not in self.books or inst in self.refused:
                answers.append(error("60018", f"channel:{channel},instId:{inst} doesn't exist"))
                continue
            if op == "subscribe":
                client.subscribed.add(inst)
            else:
                client.subscribed.discard(inst)
            answers.append({"event": op, "arg": arg, "connId": client.conn_id})
        return answers

    # --- REST --------------------------------------------------------------------------------

    def _rest(self, data: list[Any]) -> web.Response:
        self.stats.rest_requests += 1
        if self._rest_errors:
            status = self._rest_errors.pop(0)
            self.stats.rest_limited += 1
            code = "50011" if status == 429 else "50001"
            body = {"code": code, "msg": "Too Many Requests" if status == 429 else "error"}
            return web.json_response(body | {"data": []}, status=status)
        return web.json_response({"code": "0", "msg": "", "data": data})

    async def _tickers(self, request: web.Request) -> web.Response:
        inst = request.query.get("instId")
        if inst is None and request.query.get("instType") != "SPOT":
            return web.json_response(
                {"code": "51000", "msg": "Parameter instType error", "data": []}, status=400
            )
        rows = [b.ticker() for s, b in self.books.items() if inst is None or s == inst]
        return self._rest(rows)

    async def _instruments(self, request: web.Request) -> web.Response:
        rows = []
        for symbol, state in [(s, "live") for s in self.books] + [
            (s, "suspend") for s in self.suspended
        ]:
            base, quote = symbol.split("-", 1)
            tick = self.books[symbol].tick if symbol in self.books else 0.01
            rows.append(
                {
                    "instType": "SPOT",
                    "instId": symbol,
                    "baseCcy": base,
                    "quoteCcy": quote,
                    "tickSz": _s(tick),
                    "lotSz": "0.00000001",
                    "minSz": "0.00001",
                    "state": state,
                }
            )
        return self._rest(rows)

    async def _time(self, request: web.Request) -> web.Response:
        return self._rest([{"ts": str(time.time_ns() // 1_000_000)}])


async def start_simulator(symbols: Sequence[str], rate: float) -> OkxSimulator:
    """Start a simulator for `symbols` at `rate` updates/s each (the demo's entry point)."""
    return await OkxSimulator(symbols, rate=rate).start()
