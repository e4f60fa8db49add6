"""cryptofeed: `FeedHandler` + `Binance(channels=[TICKER], callbacks={TICKER: cb})`, its
documented way; TICKER is Binance's bookTicker stream, handed to the callback as cryptofeed's
normalized `Ticker` (Decimal prices). Pointed at the sender by replacing the `Binance` class's
`websocket_endpoints` and `rest_endpoints` (exchangeInfo, read with `requests` at start to map
symbols). Its `WSAsyncConn` refuses any address but `wss://`, so the endpoint is given as
`wss://127.0.0.1:PORT` and the `connect` it imports from `websockets` is wrapped to dial
`ws://` instead (no TLS, as for every runner). cryptofeed's default config runs the loop on
uvloop when it is installed (it is a dependency): kept, as a user gets it."""

from __future__ import annotations

import logging
from importlib.metadata import version

import cryptofeed.connection
from _common import Meter, parse_args, symbols
from cryptofeed import FeedHandler
from cryptofeed.connection import RestEndpoint, Routes, WebsocketEndpoint
from cryptofeed.defines import TICKER
from cryptofeed.exchanges import Binance


def main() -> None:
    args = parse_args()
    meter = Meter(args.frames, args.timeout, version("cryptofeed"), "FeedHandler, TICKER callback")
    base = f"127.0.0.1:{args.port}"
    Binance.websocket_endpoints = [WebsocketEndpoint(f"wss://{base}")]
    dial = cryptofeed.connection.connect

    def plain(address: str, **kwargs: object) -> object:
        return dial(address.replace("wss://", "ws://", 1), **kwargs)

    cryptofeed.connection.connect = plain
    Binance.rest_endpoints = [
        RestEndpoint(
            f"http://{base}",
            routes=Routes(
                "/api/v3/exchangeInfo",
                l2book="/api/v3/depth?symbol={}&limit={}",
                authentication="/api/v3/userDataStream",
            ),
        )
    ]
    count = meter.tick

    async def on_ticker(ticker: object, receipt_timestamp: float) -> None:
        count()

    pairs = [f"{s.removesuffix('USDT')}-USDT" for s in symbols(args.symbols)]
    handler = FeedHandler(config={"log": {"filename": "/dev/null", "level": "ERROR"}})
    handler.add_feed(Binance(symbols=pairs, channels=[TICKER], callbacks={TICKER: on_ticker}))
    handler.run()  # the meter exits the process at the last tick


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    main()
