"""`--serve HOST:PORT`: `/metrics` (Prometheus), `/status` (JSON), `/events` (server-sent
status updates) and `/`, a live status page with a reset control.

Runs on the feeds' own event loop, so every handler reads the feeds directly and safely.

What protects it:

* the `Host` header must name this server (the bound address; the loopback names when bound to
  loopback; the machine's names that resolve to the bound address; `allowed_hosts`), else 421
  on every route: a page whose own name was re-pointed at this address (DNS rebinding) is
  refused;
* at most `max_connections` connections; more are answered 503 and closed at once (counted);
  a connection must send its request head within `header_timeout`, and an idle one is closed
  after `keepalive_timeout`;
* controls (`POST /reset`) are refused unless the server is bound to a loopback address and
  the request comes from loopback, or the request carries the token printed at startup
  (`Authorization: Bearer`, `X-Foxtrot-Token`, or the HttpOnly SameSite=Strict cookie that
  `POST /login` sets), never in the URL; a request from another origin is refused whatever it
  carries;
* every response forbids framing and content sniffing (X-Frame-Options, a CSP with
  `frame-ancestors 'none'`, X-Content-Type-Options).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import hmac
import ipaddress
import logging
import math
import re
import secrets
import socket
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs
import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from foxtrot_stream.surfaces.prometheus import exposition

if TYPE_CHECKING:
    from foxtrot_stream.runtime.feed import Feed
    from foxtrot_stream.runtime.source_feed import SourceFeed

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


async def start_server(
    feeds: Callable[[], Sequence[Feed | SourceFeed]],
    host: str,
    port: int,
    options: ServeOptions | None = None,
) -> StatusServer:
    """A started `StatusServer` for `feeds`, or `ServeAddressError` naming the address and what
    was wrong with it (a port out of range, an address that cannot be bound)."""
    if not 0 <= port <= 65535:
        raise ServeAddressError(f"port {port!r}: expected 0..65535")
    server = StatusServer(feeds, host, port, options=options)
    try:
        await server.start()
    except OSError as exc:
        await server.stop()
        raise ServeAddressError(
            f"{host}:{port}: cannot listen there: {exc.strerror or exc}"
        ) from None
    return server


async def serve_feeds(
    feeds: Callable[[], Sequence[Feed | SourceFeed]],
    address: tuple[str, int] | None,
    options: ServeOptions | None = None,
) -> StatusServer | None:
    """Start a `StatusServer` for `run`/`demo --serve` and say where it is (stderr).

    Raises `ServeAddressError` when the address cannot be bound."""
    if address is None:
        return None
    try:
        server = await start_server(feeds, *address, options)
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
    return resources.files("foxtrot_stream.surfaces").joinpath("status_page.html").read_bytes()


@functools.cache
def _page_csp() -> str:
    """The page's Content-Security-Policy: its one inline script allowed by its hash, nothing
    loaded from elsewhere, no framing."""
    page = _status_page()
    scripts = re.findall(rb"<script>(.*?)</script>", page, re.S)
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(body).digest()).decode() + "'"
        for body in scripts
    )
    return (
        f"default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )


#: Every response but the page: nothing to run, nothing to frame.
PLAIN_CSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"


def is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _positive(name: str, value: float) -> float:
    if not (isinstance(value, int | float) and not isinstance(value, bool) and value > 0):
        raise ValueError(f"{name}: expected a number > 0, got {value!r}")
    return value


#: Connections the status server keeps open at once (pages, scrapers, API clients).
DEFAULT_MAX_CONNECTIONS = 32


def _names(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):  # one name, not its letters
        return (value,)
    return tuple(value)


@attrs.frozen
class ServeOptions:
    """How the status server protects itself; every field has a safe default.

    `allowed_hosts`: extra names (`name` or `name:port`) accepted in the `Host` header besides
    the bound address, the loopback names when bound to loopback, and the machine's own names
    when they resolve to the bound address. `max_connections`: connections open at once;
    more are answered 503 and closed at once. `header_timeout`: seconds a new connection has to
    send a complete request head. `keepalive_timeout`: seconds an idle connection stays open
    between requests (also aiohttp's limit for the next request head to arrive)."""

    allowed_hosts: tuple[str, ...] = attrs.field(default=(), converter=_names)
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    header_timeout: float = 5.0
    keepalive_timeout: float = 15.0

    def __attrs_post_init__(self) -> None:
        if isinstance(self.max_connections, bool) or not (
            isinstance(self.max_connections, int) and self.max_connections >= 1
        ):
            raise ValueError(
                f"max_connections: expected an integer >= 1, got {self.max_connections!r}"
            )
        _positive("header_timeout", self.header_timeout)
        _positive("keepalive_timeout", self.keepalive_timeout)
        for name in self.allowed_hosts:
            _split_host(name, strict=True)


class HostNameError(ValueError):
    pass


def _split_host(text: str, *, strict: bool = False) -> tuple[str, int | None]:
    """`name`, `name:port`, `[v6]` or `[v6]:port` as (lower-case name without brackets, port);
    ("", None) for what is not a host (or HostNameError when `strict`)."""
    text = text.strip().lower()
    port: int | None = None
    if text.startswith("["):
        name, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            name = ""
        elif rest:
            port = _port(rest[1:])
    else:
        name, sep, port_text = text.rpartition(":")
        if not sep or ":" in name:  # no port, or a bare IPv6 address
            name, port_text = text, ""
        if port_text:
            port = _port(port_text)
        name = name.rstrip(".")  # `localhost.` is `localhost`
    if not name or port == -1 or any(c in name for c in "/@?# \t"):
        if strict:
            raise HostNameError(
                f"allowed host {text!r}: expected a host name, optionally with :PORT"
            )
        return "", None
    return name, port


def _port(text: str) -> int:
    return int(text) if text.isdigit() and 0 < int(text) <= 65535 else -1


class _Gate:
    """Counts the server's connections: refuses those over the cap, closes those that send no
    request head in time. One per server; the wrapped protocols report to it."""

    def __init__(self, inner: Callable[[], asyncio.Protocol], options: ServeOptions) -> None:
        self.inner = inner
        self.options = options
        self.open = 0
        self.refused = 0
        self.header_timeouts = 0
        self.waiting: dict[asyncio.BaseTransport, asyncio.TimerHandle] = {}
        self._warned_at = -math.inf

    def __call__(self) -> asyncio.Protocol:
        return _Guarded(self)

    def admit(self, transport: asyncio.BaseTransport) -> bool:
        if self.open >= self.options.max_connections:
            self.refused += 1
            now = time.monotonic()
            if now - self._warned_at >= 60:
                self._warned_at = now
                log.warning(
                    "foxtrot-stream: the status server refuses connections: %d open, the most "
                    "allowed (%d refused so far; --serve-max-connections)",
                    self.open,
                    self.refused,
                )
            return False
        self.open += 1
        loop = asyncio.get_running_loop()
        self.waiting[transport] = loop.call_later(
            self.options.header_timeout, self._too_slow, transport
        )
        return True

    def _too_slow(self, transport: asyncio.BaseTransport) -> None:
        if self.waiting.pop(transport, None) is not None:
            self.header_timeouts += 1
            if isinstance(transport, asyncio.Transport):
                transport.abort()
            else:
                transport.close()

    def request_seen(self, transport: asyncio.BaseTransport | None) -> None:
        handle = self.waiting.pop(transport, None) if transport is not None else None
        if handle is not None:
            handle.cancel()

    def closed(self, transport: asyncio.BaseTransport) -> None:
        self.open -= 1
        self.request_seen(transport)


_BUSY_BODY = b"too many connections to the status server\n"
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain\r\n"
    b"X-Frame-Options: DENY\r\nX-Content-Type-Options: nosniff\r\n"
    b"Content-Security-Policy: " + PLAIN_CSP.encode() + b"\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY)
)


class _Guarded(asyncio.Protocol):
    """aiohttp's protocol behind the gate: an admitted connection is handed on untouched."""

    def __init__(self, gate: _Gate) -> None:
        self.gate = gate
        self.inner: asyncio.Protocol | None = None
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        if not self.gate.admit(transport):
            if isinstance(transport, asyncio.WriteTransport):
                transport.write(_BUSY)
            transport.close()
            return
        self.inner = self.gate.inner()
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.inner is not None:
            assert self.transport is not None
            self.gate.closed(self.transport)
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()


TOKEN_COOKIE = "foxtrot_token"


class StatusServer:
    """Serves the feeds `feeds()` returns; see the module docstring."""

    def __init__(
        self,
        feeds: Callable[[], Sequence[Feed | SourceFeed]],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str | None = None,
        options: ServeOptions | None = None,
    ) -> None:
        self.feeds = feeds
        self.host = host
        self.port = port
        self.token = token or secrets.token_urlsafe(16)
        self.options = options or ServeOptions()
        self.loopback = is_loopback(host)
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self._gate: _Gate | None = None
        self._closing = asyncio.Event()
        self._snapshot: bytes | None = None
        self._building: asyncio.Future[bytes] | None = None
        self._snapshot_until = 0.0
        #: (name, port or None: the bound port or none) accepted in the Host header
        self.allowed_hosts: set[tuple[str, int | None]] = set()
        self.misdirected = 0

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=4096)
        app.on_response_prepare.append(self._protect)
        app.router.add_get("/", self._page)
        app.router.add_get("/status", self._status)
        app.router.add_get("/events", self._events)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_post("/reset", self._reset)
        app.router.add_post("/login", self._login)
        return app

    async def start(self) -> None:
        if not self.loopback:
            log.warning(
                "foxtrot-stream: the status server listens on %s, which is not a loopback "
                "address: anyone who can reach it sees the status; controls need the token",
                self.host,
            )
        self._runner = web.AppRunner(
            self.app(),
            access_log=None,
            shutdown_timeout=1.0,
            keepalive_timeout=self.options.keepalive_timeout,
            max_line_size=4096,
            max_field_size=4096,
            max_headers=64,
            handler_cancellation=True,
        )
        await self._runner.setup()
        assert self._runner.server is not None
        self._gate = _Gate(self._runner.server, self.options)
        loop = asyncio.get_running_loop()
        # asyncio accepts up to `backlog` connections per wake-up before the gate refuses any:
        # at most max_connections + 64 sockets of a flood are ever this process's files
        self._listener = await loop.create_server(self._gate, self.host, self.port, backlog=64)
        if self.port == 0:
            self.port = int(self._listener.sockets[0].getsockname()[1])
        await self._allow_hosts()

    async def stop(self) -> None:
        self._closing.set()
        if self._listener is not None:
            self._listener.close()  # no new connections; the runner closes the open ones
            self._listener = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def connections(self) -> dict[str, int]:
        """Open connections and, since the start, those refused over the cap and those closed
        for sending no request head in time, and requests refused for their Host."""
        gate = self._gate
        return {
            "open": gate.open if gate else 0,
            "refused": gate.refused if gate else 0,
            "header_timeouts": gate.header_timeouts if gate else 0,
            "misdirected": self.misdirected,
        }

    # --- who may ask ----------------------------------------------------------------------------

    async def _allow_hosts(self) -> None:
        """The `Host` names a browser may use for this server: what defeats DNS rebinding (a
        name the attacker controls, pointed at this address, is not among them)."""
        bound = self.host.lower()
        wildcard = bound in ("0.0.0.0", "::", "")
        names = {bound}
        if self.loopback or wildcard:
            names |= {"localhost", "127.0.0.1", "::1"}
        for name in names:
            self.allowed_hosts.add((name, None))
        for entry in self.options.allowed_hosts:
            self.allowed_hosts.add(_split_host(entry, strict=True))
        # the machine's own names, when they lead here
        loop = asyncio.get_running_loop()
        for name in {socket.gethostname().lower(), socket.getfqdn().lower()} - {""}:
            try:
                async with asyncio.timeout(2.0):
                    infos = await loop.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
            except (OSError, TimeoutError):
                continue
            addresses = {str(info[4][0]).lower() for info in infos}
            if wildcard or bound in addresses:
                self.allowed_hosts.add((name, None))

    def host_allowed(self, header: str | None) -> bool:
        if header is None:  # not a browser (HTTP/1.0 tools): no page could have sent it
            return True
        name, port = _split_host(header)
        if not name:
            return False
        if port is not None and (name, port) in self.allowed_hosts:  # `NAME:PORT` as allowed
            return True
        if port is not None and port != self.port:
            return False
        if (name, None) in self.allowed_hosts:
            return True
        if self.host.lower() in ("0.0.0.0", "::", ""):
            # bound everywhere: any IP literal names this machine, and no attacker can point
            # an IP literal elsewhere (rebinding needs a name)
            with contextlib.suppress(ValueError):
                ipaddress.ip_address(name)
                return True
        return False

    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        assert self._gate is not None
        self._gate.request_seen(request.transport)
        if not self.host_allowed(request.headers.get("Host")):
            self.misdirected += 1
            shown = (request.headers.get("Host") or "")[:80]
            return web.json_response(
                {
                    "error": f"Host {shown!r} is not a name of this server (DNS rebinding?); "
                    "allow a name with --serve-allow-host NAME"
                },
                status=421,
            )
        response: web.StreamResponse = await handler(request)
        return response

    async def _protect(self, request: web.Request, response: web.StreamResponse) -> None:
        """No framing (clickjacking), no content sniffing, no referrer, on every response."""
        headers = response.headers
        headers["X-Frame-Options"] = "DENY"
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "no-referrer"
        headers.setdefault("Content-Security-Policy", PLAIN_CSP)
        headers.setdefault("Cache-Control", "no-store")

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
        self._snapshot = orjson.dumps(
            {"generated_at": time.time(), "adapters": adapters, "server": self.connections}
        )
        cost = time.monotonic() - started
        self._snapshot_until = started + max(EVENT_INTERVAL * 0.9, 10 * cost)
        return self._snapshot

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(
            body=_status_page(),
            content_type="text/html",
            charset="utf-8",
            headers={"Content-Security-Policy": _page_csp()},
        )

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

    def _token_ok(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token.encode(), self.token.encode())

    def presented_token(self, request: web.Request) -> str | None:
        """The token from `Authorization: Bearer`, `X-Foxtrot-Token` or the page's cookie;
        never from the URL (it would end up in histories and proxies' logs)."""
        auth = request.headers.get("Authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return request.headers.get("X-Foxtrot-Token") or request.cookies.get(TOKEN_COOKIE)

    def cross_origin(self, request: web.Request) -> str | None:
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != request.host:
            return f"cross-origin request from {origin[:80]} refused"
        return None

    def refusal(self, request: web.Request) -> str | None:
        """Why a control request is refused (None: allowed)."""
        why = self.cross_origin(request)
        if why is not None:
            return why
        if "token" in request.query:
            return (
                "the token is never accepted in the URL (it would be kept in histories and "
                "logs): send it as `Authorization: Bearer <token>`, or sign in on the page"
            )
        if self._token_ok(self.presented_token(request)):
            return None
        if self.loopback and is_loopback(request.remote):
            return None
        return (
            "controls need the token printed at startup (Authorization: Bearer <token> or "
            "X-Foxtrot-Token header, or sign in on the page)"
        )

    async def _login(self, request: web.Request) -> web.Response:
        """`POST /login` with the token as the form field `token` (the request body, never the
        URL): sets an HttpOnly, SameSite=Strict cookie the page's controls then carry."""
        why = self.cross_origin(request)
        if why is None and "token" in request.query:
            why = "the token is never accepted in the URL: send it in the request body"
        if why is not None:
            log.warning("foxtrot-stream: sign-in from %s refused: %s", request.remote, why)
            return web.json_response({"error": why}, status=403)
        try:
            async with asyncio.timeout(self.options.header_timeout):
                form = await request.post()
        except (TimeoutError, ValueError, web.HTTPException):
            return web.json_response({"error": "expected a form with the field token"}, status=400)
        token = form.get("token")
        if not isinstance(token, str):
            return web.json_response({"error": "expected a form with the field token"}, status=400)
        if not self._token_ok(token):
            log.warning("foxtrot-stream: sign-in from %s refused: wrong token", request.remote)
            return web.json_response({"error": "wrong token"}, status=403)
        response = web.json_response({"signed_in": True})
        response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="Strict", path="/")
        return response

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
