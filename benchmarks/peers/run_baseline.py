"""The yardstick: bare aiohttp `ws_connect` to the combined stream, `orjson.loads` (or, with
`--decoder json`, the standard library's `json.loads`) of each frame and a slotted attrs tick
record with float prices, no checks and no state: the least a Python client does to hand out
a typed tick. Runs in the project env (aiohttp, orjson and attrs are its dependencies)."""

from __future__ import annotations

import asyncio
import json
import time
from importlib.metadata import version

import aiohttp
import attrs
import orjson
from _common import Meter, parse_args, symbols


@attrs.define(slots=True)
class Tick:
    symbol: str
    bid: float
    bid_size: float
    ask: float
    ask_size: float
    seq: int
    received_ns: int


async def main() -> None:
    args = parse_args(decoder={"choices": ("orjson", "json"), "default": "orjson"})
    decoder = f"orjson {version('orjson')}" if args.decoder == "orjson" else "json"
    meter = Meter(
        args.frames,
        args.timeout,
        f"aiohttp {aiohttp.__version__}, {decoder}",
        f"ws.receive() + {args.decoder}.loads + attrs Tick",
    )
    streams = "/".join(f"{s.lower()}@bookTicker" for s in symbols(args.symbols))
    url = f"ws://127.0.0.1:{args.port}/stream?streams={streams}"
    loads = orjson.loads if args.decoder == "orjson" else json.loads
    on_tick, now_ns, text = meter.tick, time.time_ns, aiohttp.WSMsgType.TEXT
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        while True:
            msg = await ws.receive()
            if msg.type is not text:
                raise RuntimeError(f"unexpected {msg.type}: {msg.data!r}")
            d = loads(msg.data)["data"]
            on_tick(
                Tick(
                    d["s"],
                    float(d["b"]),
                    float(d["B"]),
                    float(d["a"]),
                    float(d["A"]),
                    d["u"],
                    now_ns(),
                )
            )


if __name__ == "__main__":
    asyncio.run(main())
