"""Credentials in URLs (`wss://user:secret@host`, `?token=…`) are never shown: not in the
settings warnings, the feed's logs, its status or its metrics (`foxtrot_stream.util.redact`)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from foxtrot_stream.config.settings import load
from foxtrot_stream.contract.plugins import PluginHost
from foxtrot_stream.contract.records import PollError, TransportFailure
from foxtrot_stream.surfaces.serve import StatusServer
from foxtrot_stream.util.redact import redact
from foxtrot_stream_binance.simulator import Simulator

from e2e_helpers import FAST, Logs, proven, wait_for


def test_redact_masks_userinfo_and_secret_parameters() -> None:
    assert redact("wss://user:secret@stream.example:9443/ws") == "wss://***@stream.example:9443/ws"
    assert redact("https://k@h/p?symbol=X&apiKey=abc&token=t#f") == (
        "https://***@h/p?symbol=X&apiKey=***&token=***#f"
    )
    assert redact("ws://u:pa/ss@h/stream") == "ws://***@h/stream"  # an unescaped / in it
    text = "ClientError: cannot connect to wss://a:b@x.example/ws?listenKey=K (refused)"
    assert (
        redact(text)
        == "ClientError: cannot connect to wss://***@x.example/ws?listenKey=*** (refused)"
    )
    # what transports and pollers report is shown in logs and status: masked where it is made
    failure = TransportFailure("connect_failed", "ClientError: wss://u:pw@h/ws refused")
    assert failure.detail == "ClientError: wss://***@h/ws refused" and "pw" not in str(failure)
    assert str(PollError("GET https://h/api?signature=abc failed")) == (
        "GET https://h/api?signature=*** failed"
    )
    for plain in (
        "http://127.0.0.1:8765/status",
        "no URL here",
        "wss://x.example/stream?streams=a/b",
    ):
        assert redact(plain) == plain


async def test_credentials_in_urls_never_reach_logs_status_or_metrics(
    host: PluginHost, sim: Simulator, make_feed: Any, logs: Logs
) -> None:
    """`ws://user:secret@…` (an address that is not plainly loopback: the not-encrypted
    warning quotes it). Before: the warning printed the password."""
    ws_port = sim.settings()["binance.ws_url"].rsplit(":", 1)[1]
    rest_port = sim.settings()["binance.rest_url"].rsplit(":", 1)[1]
    values = (
        FAST
        | sim.settings()
        | {
            "binance.ws_url": f"ws://user:s3cr3t@[::ffff:127.0.0.1]:{ws_port}",
            "binance.rest_url": f"http://user:s3cr3t@[::ffff:127.0.0.1]:{rest_port}",
        }
    )
    loaded = load(text=json.dumps(values), schema=host.schema())
    warnings = [str(p) for p in loaded.problems]
    assert any("not encrypted" in w for w in warnings) and not any("s3cr3t" in w for w in warnings)
    feed, _ = await make_feed(loaded.settings)
    server = StatusServer(lambda: [feed], "127.0.0.1", 0)
    await server.start()
    try:
        await wait_for(proven(feed), 5, "streaming")
        sim.outage(0.5)  # failures, logged and kept in the status
        await wait_for(lambda: logs.count("WebSocket error") >= 1, 5, "a failure")
        async with aiohttp.ClientSession() as session:
            async with session.get(server.url + "status") as resp:
                status = await resp.text()
            async with session.get(server.url + "metrics") as resp:
                metrics = await resp.text()
    finally:
        await server.stop()
    assert logs.count("not encrypted") == 2 and logs.count("://***@[::ffff:127.0.0.1]:") == 2
    shown = "\n".join(logs.lines()) + status + metrics
    assert "s3cr3t" not in shown
