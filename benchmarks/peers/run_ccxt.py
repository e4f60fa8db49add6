"""ccxt (ccxt.pro, in the `ccxt` package): `await exchange.watch_bids_asks(symbols)` in a
loop, its documented streaming API for bookTicker (`/ws` + one SUBSCRIBE naming every stream);
each update is parsed (orjson, one of its dependencies) into ccxt's unified ticker dict.
Pointed at the sender by rewriting the Binance hosts in `exchange.urls` (REST
`https://api.binance.com`, WebSocket `wss://stream.binance.com:9443`); `load_markets()` reads
the sender's exchangeInfo, limited to spot (`options.fetchMarkets.types`, else it also asks the
futures hosts).

ccxt's watch API conflates: each await returns the quotes that changed since the previous one,
one per symbol, so the loop sees fewer updates than were sent (reported as `delivered`). It
still parses every frame, so the count is frames processed: the runner stops when the last
frame's `u` has been handed out, and counts by `u`."""

from __future__ import annotations

import asyncio
import logging

import ccxt
import ccxt.pro
from _common import Meter, parse_args, symbols


def rewrite(node: object, hosts: dict[str, str]) -> object:
    if isinstance(node, dict):
        return {k: rewrite(v, hosts) for k, v in node.items()}
    if isinstance(node, str):
        for real, local in hosts.items():
            if node.startswith(real):
                return local + node[len(real) :]
    return node


async def main() -> None:
    args = parse_args()
    meter = Meter(args.frames, args.timeout, ccxt.__version__, "ccxt.pro watch_bids_asks()")
    exchange = ccxt.pro.binance({"options": {"fetchMarkets": {"types": ["spot"]}}})
    exchange.urls = rewrite(
        exchange.urls,
        {
            "https://api.binance.com": f"http://127.0.0.1:{args.port}",
            "wss://stream.binance.com:9443": f"ws://127.0.0.1:{args.port}",
        },
    )
    await exchange.load_markets()
    wanted = [f"{s.removesuffix('USDT')}/USDT" for s in symbols(args.symbols)]
    upto = meter.upto
    while True:
        quotes = await exchange.watch_bids_asks(wanted)
        upto(max(q["info"]["u"] for q in quotes.values()), len(quotes))


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main())
