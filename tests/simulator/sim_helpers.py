"""Helpers for the simulator's tests: fast timings and a few ways to read a socket."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
from aiohttp import WSMsgType

from foxtrot_stream_binance.simulator import SimulatorConfig

FAST: dict[str, Any] = {
    "symbols": ("BTCUSDT", "ETHUSDT", "BNBUSDT"),
    "rate": 50.0,
    "seed": 7,
    "ping_interval": 0.2,
    "pong_timeout": 0.6,
    "close_timeout": 0.3,
    "shutdown_grace": 0.2,
}
ENDED = (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR)


def config(**overrides: Any) -> SimulatorConfig:
    return SimulatorConfig(**(FAST | overrides))


async def next_json(ws: aiohttp.ClientWebSocketResponse, within: float = 1.0) -> Any:
    msg = await ws.receive(timeout=within)
    assert msg.type is WSMsgType.TEXT, msg
    return orjson.loads(msg.data)


async def reply(ws: aiohttp.ClientWebSocketResponse, within: float = 1.0) -> dict[str, Any]:
    """The next answer to a control message, skipping data frames."""
    deadline = time.monotonic() + within
    while True:
        obj = await next_json(ws, max(0.01, deadline - time.monotonic()))
        if isinstance(obj, dict) and "id" in obj and ("result" in obj or "error" in obj):
            return obj


async def ask(ws: aiohttp.ClientWebSocketResponse, request: Any) -> dict[str, Any]:
    """Send a control message (an object, or text as is) and return its answer."""
    await ws.send_str(request if isinstance(request, str) else orjson.dumps(request).decode())
    return await reply(ws)


async def collect(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> list[aiohttp.WSMessage]:
    """Every message received for `seconds` (or until the connection ends)."""
    out: list[aiohttp.WSMessage] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            # not receive(timeout=…): with autoping, each ping it answers restarts that timeout
            async with asyncio.timeout(left):
                msg = await ws.receive()
        except TimeoutError:
            break
        out.append(msg)
        if msg.type in ENDED:
            break
    return out


def texts(messages: list[aiohttp.WSMessage]) -> list[Any]:
    return [orjson.loads(m.data) for m in messages if m.type is WSMsgType.TEXT]


async def ended(ws: aiohttp.ClientWebSocketResponse, within: float = 2.0) -> aiohttp.WSMessage:
    """Read until the connection ends; the message that ended it."""
    async with asyncio.timeout(within):
        while True:
            msg = await ws.receive()
            if msg.type in ENDED:
                return msg


async def wait_until(
    predicate: Callable[[], object], within: float = 2.0, what: str = "a condition"
) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.005)
