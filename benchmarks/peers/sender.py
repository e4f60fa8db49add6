"""A loopback Binance look-alike that every client in `benchmarks/peers/` can be pointed at.

It reuses `benchmarks/full_path.py`'s sender design (a plain asyncio server that does the
WebSocket handshake itself and writes pre-encoded frames in 256 KiB blocks, cut at frame
boundaries) and adds what the other clients need:

- WebSocket paths in every form they use: `/ws`, `/ws/<stream>[/<stream>…]`,
  `/stream?streams=a/b/…` and `/stream`; paths under `/stream` get combined-stream frames
  (`{"stream":…,"data":…}`), the others bare events; the events are the same bytes either way.
- `{"method":"SUBSCRIBE",…,"id":N}` (answered `{"result":null,"id":N}`), `LIST_SUBSCRIPTIONS`,
  pings and the close handshake. A connection whose URL names streams gets the burst at once;
  one without waits for its first SUBSCRIBE, then 0.3 s without another, then gets it.
- REST: `/api/v3/exchangeInfo` (full enough for ccxt's market parser), `/api/v3/ping`,
  `/api/v3/time`, `/api/v3/ticker/bookTicker`, `/api/v3/depth` (an empty snapshot),
  `/sapi/v1/asset/tradeFee` (empty); anything
  else is answered 404 and logged on stderr, so a client needing more shows up.

Every subscribed connection gets the same burst: `--frames` bookTicker events over
`N_SYMBOLS` symbols, `u` increasing by one per event. Standalone, for trying a client by hand:
`uv run python benchmarks/peers/sender.py --port 9443`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import contextlib
import hashlib
import json
import os
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from full_path import CHUNK, GUID, U0, read_client_frame, symbols, ws_frame

QUIET = 0.3  # seconds without a new SUBSCRIBE before the burst starts


def book_tickers(n: int, syms: list[str]) -> tuple[list[bytes], list[bytes]]:
    """`n` bookTicker events, symbols in turn, `u` increasing: (bare events, combined frames)."""
    bare: list[bytes] = []
    combined: list[bytes] = []
    for i in range(n):
        sym = syms[i % len(syms)]
        event = (
            f'{{"u":{U0 + i},"s":"{sym}","b":"25.{3500 + i % 97:04d}0000","B":"31.21000000",'
            f'"a":"25.{3600 + i % 89:04d}0000","A":"40.66000000"}}'
        ).encode()
        bare.append(event)
        combined.append(b'{"stream":"%s@bookTicker","data":%s}' % (sym.lower().encode(), event))
    return bare, combined


def exchange_info(syms: list[str]) -> bytes:
    def market(sym: str) -> dict[str, object]:
        return {
            "symbol": sym,
            "status": "TRADING",
            "baseAsset": sym.removesuffix("USDT"),
            "baseAssetPrecision": 8,
            "quoteAsset": "USDT",
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": ["LIMIT", "MARKET"],
            "icebergAllowed": True,
            "ocoAllowed": True,
            "allowTrailingStop": True,
            "cancelReplaceAllowed": True,
            "quoteOrderQtyMarketAllowed": True,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "permissions": ["SPOT"],
            "permissionSets": [["SPOT"]],
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": "0.00010000",
                    "maxPrice": "100000.00000000",
                    "tickSize": "0.00010000",
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": "0.01000000",
                    "maxQty": "100000.00000000",
                    "stepSize": "0.01000000",
                },
                {"filterType": "NOTIONAL", "minNotional": "5.00000000"},
            ],
        }

    info = {
        "timezone": "UTC",
        "serverTime": int(time.time() * 1000),
        "rateLimits": [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": 6000,
            }
        ],
        "exchangeFilters": [],
        "symbols": [market(s) for s in syms],
    }
    return json.dumps(info).encode()


class PeerSender:
    def __init__(self, frames: int, syms: list[str], verbose: bool = False) -> None:
        bare, combined = book_tickers(frames, syms)
        self.blobs = {False: self._blob(bare), True: self._blob(combined)}
        self.syms = syms
        self.info = exchange_info(syms)
        self.verbose = verbose

    @staticmethod
    def _blob(events: list[bytes]) -> tuple[memoryview, list[int]]:
        wire = [ws_frame(e) for e in events]
        offsets = [0]
        for w in wire:
            offsets.append(offsets[-1] + len(w))
        return memoryview(b"".join(wire)), offsets

    def log(self, text: str) -> None:
        if self.verbose:
            print(f"sender: {text}", file=sys.stderr, flush=True)

    async def serve(self, port: int, ready: Connection | None = None) -> None:
        server = await asyncio.start_server(self.handle, "127.0.0.1", port)
        bound = server.sockets[0].getsockname()[1]
        if ready is not None:
            ready.send(bound)
        self.log(f"listening on 127.0.0.1:{bound}")
        async with server:
            await server.serve_forever()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._one(reader, writer):
                pass  # HTTP keep-alive: the next request on the same connection
        except (
            asyncio.IncompleteReadError,
            ConnectionError,
            asyncio.LimitOverrunError,
            TimeoutError,  # a WebSocket that never subscribed, closed after a minute
        ):
            pass
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """One HTTP request; True when the connection stays open for another."""
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        method, target, _ = head[0].split(" ", 2)
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if int(headers.get("content-length", "0") or 0):
            await reader.readexactly(int(headers["content-length"]))
        if headers.get("upgrade", "").lower() == "websocket":
            await self.websocket(reader, writer, target, headers)
            return False
        self.log(f"{method} {target[:100]}")
        path = urlsplit(target).path
        status = "200 OK"
        if path.endswith("/exchangeInfo"):
            body = self.info
        elif path.endswith("/ping"):
            body = b"{}"
        elif path.endswith("/time"):
            body = b'{"serverTime":%d}' % int(time.time() * 1000)
        elif path.endswith("/ticker/bookTicker"):
            body = self.book_ticker(parse_qs(urlsplit(target).query))
        elif path.endswith("/asset/tradeFee"):
            body = b"[]"  # nautilus_trader's instrument provider asks (no fee tier: zero fees)
        elif path.endswith("/depth"):
            body = b'{"lastUpdateId":%d,"bids":[],"asks":[]}' % U0
        else:
            print(f"sender: not simulated: {method} {target}", file=sys.stderr, flush=True)
            status, body = "404 Not Found", b'{"code":-1,"msg":"not simulated"}'
        keep = headers.get("connection", "").lower() != "close"
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"Connection: {'keep-alive' if keep else 'close'}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        return keep

    def book_ticker(self, query: dict[str, list[str]]) -> bytes:
        """The REST quote (foxtrot-stream's feed polls until the WebSocket proves itself)."""
        if "symbol" in query:
            wanted = query["symbol"]
        elif "symbols" in query:
            wanted = json.loads(query["symbols"][0])
        else:
            wanted = self.syms
        rows = [
            {
                "symbol": s,
                "bidPrice": "24.00000000",  # unlike any streamed quote: all of those count
                "bidQty": "31.21000000",
                "askPrice": "26.00000000",
                "askQty": "40.66000000",
            }
            for s in wanted
        ]
        return json.dumps(rows[0] if "symbol" in query else rows).encode()

    async def websocket(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        target: str,
        headers: dict[str, str],
    ) -> None:
        digest = hashlib.sha1((headers["sec-websocket-key"] + GUID).encode()).digest()
        accept = base64.b64encode(digest).decode()
        writer.write(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
        )
        writer.transport.set_write_buffer_limits(high=4 * CHUNK)
        url = urlsplit(target)
        combined = url.path.startswith("/stream")
        streams = parse_qs(url.query).get("streams", [""])[0] if combined else ""
        if url.path.startswith("/ws/") and "@" in url.path:  # not ccxt's `/ws/<n>`
            streams = url.path[len("/ws/") :]
        self.log(f"websocket {target[:100]}")
        state = {"subscribed": bool(streams), "last": 0.0}
        incoming = asyncio.create_task(self.control(reader, writer, state))
        async with asyncio.timeout(60):
            while not state["subscribed"] or time.monotonic() - state["last"] < QUIET:
                if incoming.done():
                    return
                await asyncio.sleep(0.05)
        view, offsets = self.blobs[combined]
        t0 = time.process_time()
        await burst(writer, view, offsets)
        self.log(f"burst of {len(offsets) - 1} done, {time.process_time() - t0:.2f} CPU-s")
        await incoming  # until the client closes

    async def control(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: dict
    ) -> None:
        """The client's frames: SUBSCRIBE & co., pings, close; data frames are dropped."""
        try:
            while True:
                opcode, data = await read_client_frame(reader)
                if opcode == 0x8:
                    writer.write(b"\x88\x02\x03\xe8")
                    await writer.drain()
                    break
                if opcode == 0x9 and len(data) < 126:
                    writer.write(bytes((0x8A, len(data))) + data)
                elif opcode == 0x1:
                    self.log(f"control {data[:120]!r}")
                    with contextlib.suppress(ValueError, AttributeError):
                        req = json.loads(data)
                        reply: object = None
                        if req.get("method") == "SUBSCRIBE":
                            state["subscribed"] = True
                            state["last"] = time.monotonic()
                        elif req.get("method") == "LIST_SUBSCRIPTIONS":
                            reply = []
                        answer = json.dumps({"result": reply, "id": req.get("id")})
                        writer.write(ws_frame(answer.encode()))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client went away mid-frame: this connection is over


async def burst(writer: asyncio.StreamWriter, view: memoryview, offsets: list[int]) -> None:
    """All frames, in blocks of about `CHUNK` bytes cut at frame boundaries (so a pong or a
    SUBSCRIBE answer written meanwhile never splits a frame)."""
    n = len(offsets) - 1
    pos, end = 0, offsets[n]
    while pos < end:
        cut = offsets[min(n, max(bisect.bisect_right(offsets, pos + CHUNK) - 1, 1))]
        if cut <= pos:
            cut = offsets[bisect.bisect_right(offsets, pos)]
        writer.write(view[pos:cut])
        await writer.drain()
        pos = cut


def sender_main(
    frames: int, n_symbols: int, core: int | None, ready: Connection, verbose: bool = False
) -> None:
    """The sender process's entry point (the driver forks it)."""
    if core is not None:
        with contextlib.suppress(OSError, AttributeError):  # no such core: unpinned
            os.sched_setaffinity(0, {core})
    sender = PeerSender(frames, symbols()[:n_symbols], verbose)
    asyncio.run(sender.serve(0, ready))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9443)
    parser.add_argument("--frames", type=int, default=200_000)
    args = parser.parse_args()
    sender = PeerSender(args.frames, symbols(), verbose=True)
    asyncio.run(sender.serve(args.port))


if __name__ == "__main__":
    main()
