"""python-binance: `AsyncClient.create()` + `BinanceSocketManager.multiplex_socket(streams)`
(`/stream?streams=…`), read with `await socket.recv()`, its documented asyncio API
(`ThreadedWebsocketManager` runs this same socket on an event loop in its own thread, wrapping
each `recv()` in `asyncio.wait_for` before calling the callback: the same work and more).
Messages arrive as dicts, parsed with orjson: its documented opt-in for speed (installed next
to it, it is picked up when importable). Pointed at the sender by the class constants
`AsyncClient.API_URL` (`create()` calls `/api/v3/ping` and `/api/v3/time`) and
`BinanceSocketManager.STREAM_URL`. Defaults otherwise (its `max_queue_size` of 100 was never
exceeded here; an error the socket reports through the queue fails the run)."""

from __future__ import annotations

import asyncio
import logging
from importlib.metadata import version

from _common import Meter, parse_args, symbols
from binance import AsyncClient, BinanceSocketManager


async def main() -> None:
    args = parse_args()
    meter = Meter(
        args.frames,
        args.timeout,
        version("python-binance"),
        "BinanceSocketManager.multiplex_socket, await recv()",
    )
    AsyncClient.API_URL = f"http://127.0.0.1:{args.port}/api"
    BinanceSocketManager.STREAM_URL = f"ws://127.0.0.1:{args.port}/"
    client = await AsyncClient.create()
    manager = BinanceSocketManager(client)
    streams = [f"{s.lower()}@bookTicker" for s in symbols(args.symbols)]
    count = meter.tick
    async with manager.multiplex_socket(streams) as socket:
        while True:
            msg = await socket.recv()
            if msg.get("e") == "error":
                meter.report(1, f"socket error: {msg}")
            count(msg)


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main())
