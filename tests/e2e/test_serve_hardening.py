"""The status server against the attacks it must withstand, on the real aiohttp server on
127.0.0.1 with a real feed streaming from the bundled simulator: DNS rebinding (a foreign
`Host`), a connection flood (idle and slow-header sockets), the token in a URL, credentials in
URLs echoed in logs and status, framing. Each test fails on the server before this hardening.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from foxtrot_stream.contract.model import TransportKind
from foxtrot_stream.contract.plugins import PluginHost
from foxtrot_stream.runtime.feed import Feed
from foxtrot_stream.surfaces.serve import ServeOptions, StatusServer
from foxtrot_stream_binance.simulator import Simulator

from e2e_helpers import Logs, proven, settings_for, wait_for

ROUTES = [("GET", ""), ("GET", "status"), ("GET", "metrics"), ("GET", "events"),
          ("POST", "reset"), ("POST", "login"), ("GET", "nosuch")]  # fmt: skip


@pytest.fixture
async def served(
    host: PluginHost, sim: Simulator, make_feed: Any
) -> AsyncIterator[tuple[Feed, StatusServer, aiohttp.ClientSession]]:
    feed, _ = await make_feed(settings_for(host, sim))
    server = StatusServer(
        lambda: [feed],
        "127.0.0.1",
        0,
        options=ServeOptions(allowed_hosts=("status.internal", "fwd.internal:8080")),
    )
    await server.start()
    jar = aiohttp.CookieJar(unsafe=True)  # keep cookies set by an IP address (127.0.0.1)
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        yield feed, server, session
    await server.stop()


async def test_dns_rebinding_a_foreign_host_is_refused_on_every_route(
    served: tuple[Feed, StatusServer, aiohttp.ClientSession],
) -> None:
    """A page on evil.example whose name now resolves to 127.0.0.1 is same-origin with itself:
    its requests carry `Host: evil.example` and a matching Origin. Before: 200 on POST /reset."""
    _, server, session = served
    evil = {"Host": "evil.example", "Origin": "http://evil.example"}
    for method, path in ROUTES:
        async with session.request(method, server.url + path, headers=evil) as resp:
            assert resp.status == 421, (method, path, resp.status)
            assert "not a name of this server" in (await resp.json())["error"]
    port = server.port
    for host in (
        "evil.example:" + str(port),
        "127.0.0.1:1",
        "localhost:1",
        "127.0.0.1.evil.example",
    ):
        async with session.post(server.url + "reset", headers={"Host": host}) as resp:
            assert resp.status == 421, host
    assert server.connections["misdirected"] == len(ROUTES) + 4
    # NAME:PORT entries: that port only (a port forward); NAME: the bound port or none
    assert server.host_allowed("fwd.internal:8080") and not server.host_allowed("fwd.internal")
    assert not server.host_allowed(f"fwd.internal:{port}")
    server.allowed_hosts.add(("exact.internal", port))
    assert server.host_allowed(f"exact.internal:{port}")
    assert not server.host_allowed("status.internal:8080")
    # the names of this server: the bound address, loopback names, an allowed name
    for host in (f"127.0.0.1:{port}", "127.0.0.1", f"localhost:{port}", "LOCALHOST.",
                 f"[::1]:{port}", f"status.internal:{port}"):  # fmt: skip
        async with session.get(server.url + "status", headers={"Host": host}) as resp:
            assert resp.status == 200, host
        origin = {"Host": host, "Origin": f"http://{host}"}
        async with session.post(server.url + "reset", headers=origin) as resp:
            assert resp.status == 200, host


def test_allowed_host_names_are_checked() -> None:
    assert ServeOptions(allowed_hosts=["a.example", "b.example:8080", "[::1]:9"]).allowed_hosts
    for bad in ("", "http://x", "a b", "x:0", "x:99999", "x:port", "[::1"):
        with pytest.raises(ValueError, match="expected a host name"):
            ServeOptions(allowed_hosts=(bad,))
    with pytest.raises(ValueError, match="max_connections: expected an integer >= 1"):
        ServeOptions(max_connections=0)
    with pytest.raises(ValueError, match="header_timeout: expected a number > 0"):
        ServeOptions(header_timeout=-1)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc (Linux)")
async def test_a_connection_flood_neither_starves_the_feed_nor_the_server(
    host: PluginHost, sim: Simulator, make_feed: Any, logs: Logs
) -> None:
    """300 idle sockets and 20 slow-header (slowloris) clients, from another process, while
    this process may open only 200 more files. Before: the server kept every socket (aiohttp's
    keep-alive timeout is an hour), accept() failed for want of descriptors (about 2,000 times
    in 3 s), asking /status failed with EMFILE and was answered only when the flood went away.
    Now: at most 16 connections, the rest answered 503 and closed at once, the admitted ones
    closed after the 0.5 s header timeout; /status answers within it and the feed, its
    WebSocket dropped by the exchange at the height of the flood, reconnects at once."""
    feed, recorder = await make_feed(settings_for(host, sim))
    options = ServeOptions(max_connections=16, header_timeout=0.5, keepalive_timeout=1.0)
    server = StatusServer(lambda: [feed], "127.0.0.1", 0, options=options)
    await server.start()
    await wait_for(proven(feed), 5, "streaming")
    flood = await asyncio.create_subprocess_exec(
        sys.executable, str(Path(__file__).with_name("flood_client.py")),
        str(server.port), "300", "20", "3.0",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    # forked with this process's limit; from now on this process may open 200 more files
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(_open_fds() + 200, hard), hard))
    try:
        assert flood.stdout is not None
        connected = await asyncio.wait_for(flood.stdout.readline(), 10)  # the flood is on
        loop = asyncio.get_running_loop()
        dropped_at, dropped_wall = loop.time(), time.time()
        sim.drop_all()  # the feed must open new sockets now

        async def feed_back() -> float:
            await wait_for(
                lambda: (
                    recorder.first_after(dropped_wall, TransportKind.WEBSOCKET) is not None
                    and feed.status()["connections"][0]["live"]
                ),
                2,  # the flood lasts 3 s: before this hardening the feed came back only after
                "the feed streaming again over a new WebSocket",
            )
            return loop.time() - dropped_at

        reconnecting = asyncio.create_task(feed_back())
        statuses: list[int | str] = []
        async with aiohttp.ClientSession() as session:
            for _ in range(30):  # until the server answers: a refusal (503) is retried
                try:
                    async with session.get(server.url + "status") as resp:
                        statuses.append(resp.status)
                        if resp.status == 200:
                            body = await resp.json()
                            break
                except (aiohttp.ClientError, OSError) as exc:
                    statuses.append(type(exc).__name__)
                await asyncio.sleep(0.1)
        answered_after = loop.time() - dropped_at
        reconnected_after = await reconnecting
        out = await asyncio.wait_for(flood.stdout.read(), 10)
        await flood.wait()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        await server.stop()
    result = json.loads(out)
    print(connected.decode().strip())
    closed = result["closed_after"]
    print(
        f"flood: {result['opened']} opened, closed within 3 s: "
        f"{sum(c is not None for c in closed)}, slowest {max(c or 99 for c in closed):.2f} s; "
        f"server: {body.get('server')}; /status answered {statuses} after "
        f"{answered_after:.2f} s; the feed back on a WebSocket after {reconnected_after:.2f} s"
    )
    starved = [line for line in logs.lines() if "Too many open files" in line]
    exhausted = logs.count("out of system resource")  # asyncio: accept() failed with EMFILE
    print(f"accept() out of file descriptors: {exhausted} times; feed lines on EMFILE: {starved}")
    assert result["opened"] == 320
    assert starved == [] and exhausted == 0
    assert all(isinstance(s, int) for s in statuses), statuses  # no EMFILE on this side
    assert statuses[-1] == 200, statuses
    assert answered_after < 0.5 + 1.5  # the header timeout frees the slots; + slack
    assert all(c is not None and c < 0.5 + 1.5 for c in closed), closed  # timeout + slack
    assert body["server"]["open"] <= 16
    assert server.connections["refused"] >= 300 - 16
    assert server.connections["header_timeouts"] >= 1


async def test_the_token_is_taken_from_a_header_or_the_cookie_never_from_the_url(
    served: tuple[Feed, StatusServer, aiohttp.ClientSession], logs: Logs
) -> None:
    _, server, session = served
    server.loopback = False  # as if bound to 0.0.0.0: controls need the token
    async with session.post(server.url + f"reset?token={server.token}") as resp:
        assert resp.status == 403, "a token in the URL ends up in histories and proxy logs"
        assert "never accepted in the URL" in (await resp.json())["error"]
    bearer = {"Authorization": f"Bearer {server.token}"}
    async with session.post(server.url + "reset", headers=bearer) as resp:
        assert resp.status == 200
    async with session.post(server.url + "reset", headers={"Authorization": "Bearer no"}) as r:
        assert r.status == 403
    # the page's way: POST /login with the token in the body sets an HttpOnly, Strict cookie
    async with session.post(server.url + "login", data={"token": "wrong"}) as resp:
        assert resp.status == 403
    async with session.post(server.url + f"login?token={server.token}", data={}) as resp:
        assert resp.status == 403
    async with session.post(server.url + "login", data={"token": server.token}) as resp:
        assert resp.status == 200
        cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    async with session.post(server.url + "reset") as resp:  # the cookie alone
        assert resp.status == 200
    cross = {"Origin": "http://attacker.example"}
    async with session.post(server.url + "reset", headers=cross) as resp:
        assert resp.status == 403  # the cookie does not help another site
    async with session.post(server.url + "login", data={"token": server.token}, headers=cross) as r:
        assert r.status == 403
    assert logs.count("refused") >= 4
    assert not any(server.token in line for line in logs.lines())


async def test_every_response_forbids_framing_and_sniffing(
    served: tuple[Feed, StatusServer, aiohttp.ClientSession],
) -> None:
    _, server, session = served
    seen = set()
    for host in (None, "evil.example"):
        for method, path in ROUTES:
            headers = {"Host": host} if host else {}
            async with session.request(method, server.url + path, headers=headers) as resp:
                seen.add(resp.status)
                assert resp.headers["X-Frame-Options"] == "DENY", (method, path)
                assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
                assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert {200, 400, 404, 421} <= seen
    async with session.get(server.url) as resp:
        csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'sha256-" in csp and "unsafe-inline" not in csp.split("style-src")[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--serve-allow-host", "status.internal"], "need --serve"),
        (["--serve", "0", "--serve-allow-host", "http://x/"], "expected a host name"),
        (["--serve", "0", "--serve-max-connections", "0"], "expected a whole number >= 1"),
    ],
)
def test_bad_serve_options_exit_2_with_a_message(args: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "foxtrot_stream", "demo", *args, "--duration", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
