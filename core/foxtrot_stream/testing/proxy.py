"""A fault-injecting proxy between any adapter and any exchange (or fake) on loopback.

`FaultProxy(ws_upstream, http_upstream)` listens on 127.0.0.1; point the adapter's WebSocket and
REST URLs at `proxy.ws_url` / `proxy.http_url` instead of the exchange's. It forwards WebSocket
frames both ways (pings and pongs included: it answers nothing itself) and HTTP requests, and
injects the faults a feed must survive, each for a while or once:

* `drop()`: every open WebSocket connection is cut (no close frame);
* `refuse(seconds)`: WebSocket upgrades answered 503;
* `silence(seconds)`: nothing from the exchange reaches the clients, pongs still do (an
  accept-but-silent exchange);
* `stall(seconds)`: nothing at all is forwarded either way, pongs included (a dead path);
* `garbage(n)`: n frames of garbage sent to every client;
* `delay(seconds)`: every frame from the exchange is held this long;
* `rest_fail(seconds)`: HTTP requests answered 503.

Loopback only, and only what a test asks for: it never reaches the internet by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import attrs
from aiohttp import WSMsgType, web

__all__ = ["FaultProxy", "ProxyStats"]

#: Frames no exchange sends: binary junk, cut-off JSON, JSON of the wrong shape.
GARBAGE: tuple[str | bytes, ...] = (
    b"\x00\xff not json",
    '{"unterminated": ',
    "[]",
    "null",
    "\x7f{}",
)


@attrs.define
class ProxyStats:
    upgrades: int = 0
    refused: int = 0
    dropped: int = 0
    frames_down: int = 0
    """Frames forwarded from the exchange to clients."""
    frames_up: int = 0
    http_requests: int = 0
    http_failed: int = 0


class FaultProxy:
    def __init__(self, ws_upstream: str, http_upstream: str) -> None:
        self.ws_upstream = ws_upstream.rstrip("/")
        self.http_upstream = http_upstream.rstrip("/")
        self.stats = ProxyStats()
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._clients: dict[web.WebSocketResponse, asyncio.BaseTransport | None] = {}
        self._refuse_until = 0.0
        self._silent_until = 0.0
        self._stall_until = 0.0
        self._rest_fail_until = 0.0
        self._delay = 0.0

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FaultProxy:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        for ws in list(self._clients):
            with contextlib.suppress(Exception):  # tearing down a test proxy: best effort
                await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    # --- faults ------------------------------------------------------------------------------

    def drop(self) -> None:
        for transport in list(self._clients.values()):
            self.stats.dropped += 1
            if transport is not None:
                transport.abort()  # type: ignore[attr-defined]

    def refuse(self, seconds: float) -> None:
        self._refuse_until = time.monotonic() + seconds

    def silence(self, seconds: float) -> None:
        self._silent_until = time.monotonic() + seconds

    def stall(self, seconds: float) -> None:
        self._stall_until = time.monotonic() + seconds

    def rest_fail(self, seconds: float) -> None:
        self._rest_fail_until = time.monotonic() + seconds

    def delay(self, seconds: float) -> None:
        self._delay = seconds

    async def garbage(self, n: int = len(GARBAGE)) -> None:
        for ws in list(self._clients):
            for i in range(n):
                frame = GARBAGE[i % len(GARBAGE)]
                with contextlib.suppress(ConnectionError, RuntimeError):
                    if isinstance(frame, bytes):
                        await ws.send_bytes(frame)
                    else:
                        await ws.send_str(frame)

    # --- forwarding ----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request)
        return await self._http(request)

    async def _http(self, request: web.Request) -> web.StreamResponse:
        self.stats.http_requests += 1
        if time.monotonic() < self._rest_fail_until:
            self.stats.http_failed += 1
            return web.Response(status=503, text="Service Unavailable (injected)")
        assert self._session is not None
        url = self.http_upstream + request.rel_url.path_qs
        body = await request.read()
        async with self._session.request(
            request.method, url, data=body or None, headers={"Accept": "*/*"}
        ) as upstream:
            payload = await upstream.read()
            headers = {
                k: v
                for k, v in upstream.headers.items()
                if k.lower() not in ("content-length", "transfer-encoding", "content-encoding")
            }
            return web.Response(status=upstream.status, body=payload, headers=headers)

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if time.monotonic() < self._refuse_until:
            self.stats.refused += 1
            return web.Response(status=503, text="Service Unavailable (injected)")
        assert self._session is not None
        try:
            upstream = await self._session.ws_connect(
                self.ws_upstream + request.rel_url.path_qs, autoping=False, autoclose=False
            )
        except (aiohttp.ClientError, OSError):
            return web.Response(status=502, text="upstream unreachable")
        client = web.WebSocketResponse(autoping=False, autoclose=False)
        await client.prepare(request)
        self.stats.upgrades += 1
        self._clients[client] = request.transport
        try:
            down = asyncio.ensure_future(self._pump(upstream, client, down=True))
            up = asyncio.ensure_future(self._pump(client, upstream, down=False))
            _, pending = await asyncio.wait({down, up}, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
                # the other direction ended the pair: this one was just cancelled
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        finally:
            self._clients.pop(client, None)
            # one side is already gone (a drop, a close): closing the other is best effort
            with contextlib.suppress(Exception):
                await upstream.close()
            with contextlib.suppress(Exception):
                await client.close()
        return client

    async def _pump(self, source: Any, sink: Any, *, down: bool) -> None:
        send: dict[WSMsgType, Callable[[Any], Awaitable[None]]] = {
            WSMsgType.TEXT: sink.send_str,
            WSMsgType.BINARY: sink.send_bytes,
            WSMsgType.PING: sink.ping,
            WSMsgType.PONG: sink.pong,
        }
        while True:
            msg = await source.receive()
            if msg.type not in send:
                return  # closed, closing or an error: end both directions
            now = time.monotonic()
            if now < self._stall_until:
                continue
            if down and msg.type is not WSMsgType.PONG and now < self._silent_until:
                continue
            if down and self._delay:
                await asyncio.sleep(self._delay)
            if down:
                self.stats.frames_down += 1
            else:
                self.stats.frames_up += 1
            try:
                await send[msg.type](msg.data)
            except (ConnectionError, RuntimeError):
                return
