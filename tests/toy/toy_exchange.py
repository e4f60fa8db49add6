"""A small exchange unlike Binance, on 127.0.0.1: what a third-party plugin meets.

* no update ids: pushes carry only the exchange's time (`ts`, ms);
* an application heartbeat: the client sends the text `ping`, the server answers `pong`;
  protocol pings are never answered, and a connection on which the client sent nothing for
  `idle` seconds is closed (as OKX does after 30 s);
* subscriptions answered per item: `{"event": "subscribe", "arg": S}` or
  `{"event": "error", "arg": S, "msg": …}` for the symbols in `refused`;
* REST: `GET /tickers` (every quote), `GET /instruments`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Sequence

import attrs
from aiohttp import WSMsgType, web


@attrs.define
class ToyStats:
    connections: int = 0
    idle_closes: int = 0
    app_pings: int = 0
    protocol_pings: int = 0
    rest_requests: int = 0


class ToyExchange:
    def __init__(
        self,
        symbols: Sequence[str],
        *,
        rate: float = 20.0,
        idle: float = 1.0,
        refused: Sequence[str] = (),
    ) -> None:
        self.symbols = tuple(symbols)
        self.rate = rate
        self.idle = idle
        self.refused = set(refused)
        self.quotes = {s: (100.0 + i, 101.0 + i) for i, s in enumerate(self.symbols)}
        self.stats = ToyStats()
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> ToyExchange:
        app = web.Application()
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/tickers", self._tickers)
        app.router.add_get("/instruments", self._instruments)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._spawn(self._market())
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._runner is not None:
            await self._runner.cleanup()

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _market(self) -> None:
        while True:
            await asyncio.sleep(1.0 / self.rate)
            for symbol, (bid, ask) in self.quotes.items():
                step = 0.01 if int(time.monotonic() * 10) % 2 else -0.01
                self.quotes[symbol] = (round(bid + step, 2), round(ask + step, 2))

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False)  # protocol pings are never answered
        await ws.prepare(request)
        self.stats.connections += 1
        subscribed: set[str] = set()
        heard = time.monotonic()

        async def push() -> None:
            while not ws.closed:
                await asyncio.sleep(1.0 / self.rate)
                if time.monotonic() - heard > self.idle:
                    self.stats.idle_closes += 1
                    await ws.close(code=4000, message=b"idle")
                    return
                for symbol in list(subscribed):
                    bid, ask = self.quotes[symbol]
                    data = {"bid": bid, "ask": ask, "ts": time.time_ns() // 1_000_000}
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await ws.send_str(json.dumps({"arg": symbol, "data": data}))

        pusher = asyncio.ensure_future(push())
        try:
            async for msg in ws:
                heard = time.monotonic()
                if msg.type is WSMsgType.PING:
                    self.stats.protocol_pings += 1
                elif msg.type is WSMsgType.TEXT and msg.data == "ping":
                    self.stats.app_pings += 1
                    await ws.send_str("pong")
                elif msg.type is WSMsgType.TEXT:
                    request_ = json.loads(msg.data)
                    for symbol in request_.get("args", []):
                        if request_.get("op") == "unsubscribe":
                            subscribed.discard(symbol)
                            await ws.send_str(json.dumps({"event": "unsubscribe", "arg": symbol}))
                        elif symbol in self.refused or symbol not in self.quotes:
                            error = {"event": "error", "arg": symbol, "msg": "not allowed"}
                            await ws.send_str(json.dumps(error))
                        else:
                            subscribed.add(symbol)
                            await ws.send_str(json.dumps({"event": "subscribe", "arg": symbol}))
        finally:
            pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pusher
        return ws

    async def _tickers(self, request: web.Request) -> web.Response:
        self.stats.rest_requests += 1
        rows = [{"symbol": s, "bid": b, "ask": a} for s, (b, a) in self.quotes.items()]
        return web.json_response(rows)

    async def _instruments(self, request: web.Request) -> web.Response:
        self.stats.rest_requests += 1
        return web.json_response([{"symbol": s} for s in self.symbols])
