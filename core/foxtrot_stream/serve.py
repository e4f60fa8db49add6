"""`--serve HOST:PORT`: `/metrics` (Prometheus), `/status` (JSON), `/events` (server-sent
status updates) and `/`, a live status page with a reset control.

Runs on the feeds' own event loop, so every handler reads the feeds directly and safely.
Controls (`POST /reset`) change state and are refused unless the server is bound to a loopback
address and the request comes from loopback, or the request carries the token printed at
startup; a request from another origin (a web page trying to reach a local port) is refused
whatever it carries.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import ipaddress
import logging
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from foxtrot_stream.prometheus import exposition

if TYPE_CHECKING:
    from foxtrot_stream.feed import Feed

log = logging.getLogger("foxtrot-stream")

#: How often `/events` pushes a status update.
EVENT_INTERVAL = 0.5


class ServeAddressError(ValueError):
    pass


def parse_address(text: str) -> tuple[str, int]:
    """`HOST:PORT`, `:PORT` or `PORT` (host 127.0.0.1); IPv6 hosts in brackets."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "", text
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise ServeAddressError(
            f"--serve {text!r}: expected HOST:PORT, :PORT or PORT with a port in 0..65535"
        )
    return host, port


async def start_server(feeds: Callable[[], Sequence[Feed]], host: str, port: int) -> StatusServer:
    """A started `StatusServer` for `feeds`, or `ServeAddressError` naming the address and what
    was wrong with it (a port out of range, an address that cannot be bound)."""
    if not 0 <= port <= 65535:
        raise ServeAddressError(f"port {port!r}: expected 0..65535")
    server = StatusServer(feeds, host, port)
    try:
        await server.start()
    except OSError as exc:
        await server.stop()
        raise ServeAddressError(
            f"{host}:{port}: cannot listen there: {exc.strerror or exc}"
        ) from None
    return server


async def serve_feeds(
    feeds: Callable[[], Sequence[Feed]], address: tuple[str, int] | None
) -> StatusServer | None:
    """Start a `StatusServer` for `run`/`demo --serve` and say where it is (stderr).

    Raises `ServeAddressError` when the address cannot be bound."""
    if address is None:
        return None
    try:
        server = await start_server(feeds, *address)
    except ServeAddressError as exc:
        raise ServeAddressError(f"--serve {exc}") from None
    print(
        f"foxtrot-stream: status page {server.url} (also {server.url}metrics and "
        f"{server.url}status); control token: {server.token}",
        file=sys.stderr,
        flush=True,
    )
    return server


@functools.cache
def _status_page() -> bytes:
    """The page, read from the package once (not from disk on every request)."""
    return resources.files("foxtrot_stream").joinpath("status_page.html").read_bytes()


def is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class StatusServer:
    """Serves the feeds `feeds()` returns; see the module docstring."""

    def __init__(
        self,
        feeds: Callable[[], Sequence[Feed]],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str | None = None,
    ) -> None:
        self.feeds = feeds
        self.host = host
        self.port = port
        self.token = token or secrets.token_urlsafe(16)
        self.loopback = is_loopback(host)
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self._snapshot: bytes | None = None
        self._building: asyncio.Future[bytes] | None = None
        self._snapshot_until = 0.0

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._page)
        app.router.add_get("/status", self._status)
        app.router.add_get("/events", self._events)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_post("/reset", self._reset)
        return app

    async def start(self) -> None:
        if not self.loopback:
            log.warning(
                "foxtrot-stream: the status server listens on %s, which is not a loopback "
                "address: anyone who can reach it sees the status; controls need the token",
                self.host,
            )
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            sockets: list[Any] = list(getattr(site._server, "sockets", None) or [])
            self.port = int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- reading ------------------------------------------------------------------------------

    async def snapshot(self) -> bytes:
        """The status of every feed as JSON, shared by every client: built at most once per
        `EVENT_INTERVAL` and never more often than every 10x the time it took, in chunks that
        let the feeds' loop run in between, however many pages are open."""
        if self._building is None:
            now = time.monotonic()
            if self._snapshot is not None and now < self._snapshot_until:
                return self._snapshot
            self._building = asyncio.ensure_future(self._build_snapshot())
        building = self._building
        try:
            return await asyncio.shield(building)
        finally:
            if building.done() and self._building is building:
                self._building = None

    async def _build_snapshot(self) -> bytes:
        started = time.monotonic()
        adapters = [await feed.status_async() for feed in self.feeds()]
        self._snapshot = orjson.dumps({"generated_at": time.time(), "adapters": adapters})
        cost = time.monotonic() - started
        self._snapshot_until = started + max(EVENT_INTERVAL * 0.9, 10 * cost)
        return self._snapshot

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(body=_status_page(), content_type="text/html", charset="utf-8")

    async def _status(self, request: web.Request) -> web.Response:
        return web.Response(body=await self.snapshot(), content_type="application/json")

    async def _metrics(self, request: web.Request) -> web.Response:
        body = await exposition(self.feeds())
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        # the page went away, or the server is stopping: the event stream just ends
        with contextlib.suppress(ConnectionResetError, asyncio.CancelledError):
            while not self._closing.is_set():
                await response.write(b"data: " + await self.snapshot() + b"\n\n")
                with contextlib.suppress(TimeoutError):  # the interval passed: send the next
                    async with asyncio.timeout(EVENT_INTERVAL):
                        await self._closing.wait()
        return response

    # --- controls -----------------------------------------------------------------------------

    def refusal(self, request: web.Request) -> str | None:
        """Why a control request is refused (None: allowed)."""
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != request.host:
            return f"cross-origin request from {origin} refused"
        token = request.headers.get("X-Foxtrot-Token") or request.query.get("token")
        if token is not None and hmac.compare_digest(token.encode(), self.token.encode()):
            return None
        if self.loopback and is_loopback(request.remote):
            return None
        return "controls need the token printed at startup (X-Foxtrot-Token header)"

    async def _reset(self, request: web.Request) -> web.Response:
        why = self.refusal(request)
        if why is not None:
            log.warning("foxtrot-stream: reset from %s refused: %s", request.remote, why)
            return web.json_response({"error": why}, status=403)
        adapter = request.query.get("adapter")
        connection_text = request.query.get("connection")
        try:
            connection = int(connection_text) if connection_text else None
        except ValueError:
            return web.json_response(
                {"error": f"connection={connection_text!r}: expected a connection id"}, status=400
            )
        feeds = [f for f in self.feeds() if adapter in (None, f.name)]
        if not feeds:
            return web.json_response({"error": f"no adapter named {adapter!r}"}, status=404)
        count = sum(feed.reset(connection) for feed in feeds)
        log.info(
            "foxtrot-stream: reset requested from %s (adapter %s, connection %s): %d breaker(s) "
            "reset",
            request.remote,
            adapter or "all",
            connection if connection is not None else "all",
            count,
        )
        return web.json_response({"reset": count})
