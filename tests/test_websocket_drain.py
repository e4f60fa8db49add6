"""`WebSocketConnection._read` takes the frames aiohttp has already parsed from its queue (a
private attribute): the queue has the shape it relies on, and a burst mixing data, the
adapter's application pongs, a protocol ping and a close is read in order, with nothing lost."""

from __future__ import annotations

import collections
import types
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from foxtrot_stream.contract.records import TransportFailure
from foxtrot_stream.transport.websocket import WebSocketConnection

N = 500


class Listener:
    def __init__(self) -> None:
        self.pongs = 0

    def pong(self) -> None:
        self.pongs += 1


@pytest.fixture
async def server() -> AsyncIterator[str]:
    """Sends N frames, with an application pong after every 100th and a protocol ping in
    the middle, without waiting for the client, then closes."""

    async def handle(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        for i in range(N):
            await ws.send_str(f'{{"i":{i}}}')
            if i % 100 == 99:
                await ws.send_str("pong")
            if i == N // 2:
                await ws.ping(b"mid")
        await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"bye")
        return ws

    app = web.Application()
    app.router.add_get("/ws", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"ws://127.0.0.1:{port}/ws"
    finally:
        await runner.cleanup()


async def test_aiohttp_queue_has_the_shape_read_relies_on(
    server: str,
) -> None:
    url = server
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, autoping=False, decode_text=False) as ws,
    ):
        first = await ws.receive()
        assert first.type is aiohttp.WSMsgType.TEXT
        queue = ws._reader._buffer
        assert isinstance(queue, collections.deque)
        while not queue:  # the rest of the burst, parsed and queued
            await ws._reader.read()  # type: ignore[unreachable]
        message, size = queue[0]
        assert message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.PING)
        assert isinstance(size, int)


async def test_a_burst_is_read_in_order_with_control_frames_between(
    server: str,
) -> None:
    url = server
    fake = types.SimpleNamespace(
        _app_pong=b"pong", frames=0, listener=Listener(), _failure=None, _closing=False
    )
    got: list[bytes] = []
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, autoping=False, autoclose=True, decode_text=False) as ws,
    ):
        receive, calls = ws.receive, 0

        async def counted() -> aiohttp.WSMessage:
            nonlocal calls
            calls += 1
            return await receive()

        ws.receive = counted  # type: ignore[method-assign]
        with pytest.raises(TransportFailure) as exc:
            await WebSocketConnection._read(fake, ws, lambda data, _ts: got.append(data))  # type: ignore[arg-type]
    assert exc.value.kind == "dropped" and "code 1001" in str(exc.value)
    assert got == [f'{{"i":{i}}}'.encode() for i in range(N)]
    assert fake.frames == N
    assert fake.listener.pongs == N // 100
    assert calls < N // 2  # most frames were taken from the queue, not through receive()
