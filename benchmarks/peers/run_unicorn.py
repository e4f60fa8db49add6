"""unicorn-binance-websocket-api: `BinanceWebSocketApiManager(process_stream_data=callback,
output_default="dict", high_performance=True)` + `create_stream(["bookTicker"], markets)`:
a plain function called, in the stream's own thread, with each message already decoded by
orjson into a dict (`output_default="dict"`; "raw_data" hands out the unparsed string,
"UnicornFy" its normalized dicts, slower). `high_performance` is its documented switch that
makes `create_stream()` non-blocking. Pointed at the sender with the manager's own
`websocket_base_uri` and `restful_base_uri` parameters (both documented for this); the
`websockets` library, its default. The answers to its SUBSCRIBE requests reach the callback
too and are not counted."""

from __future__ import annotations

import logging
import time
from importlib.metadata import version

from _common import Meter, parse_args, symbols
from unicorn_binance_websocket_api import BinanceWebSocketApiManager


def main() -> None:
    args = parse_args()
    meter = Meter(
        args.frames,
        args.timeout,
        version("unicorn-binance-websocket-api"),
        'process_stream_data callback, output "dict"',
    )
    count = meter.tick

    def on_data(msg: dict) -> None:
        if "data" in msg:
            count()

    manager = BinanceWebSocketApiManager(
        process_stream_data=on_data,
        exchange="binance.com",
        output_default="dict",
        high_performance=True,
        disable_colorama=True,
        websocket_base_uri=f"ws://127.0.0.1:{args.port}/",
        restful_base_uri=f"http://127.0.0.1:{args.port}/",
    )
    manager.create_stream(["bookTicker"], [s.lower() for s in symbols(args.symbols)])
    while True:
        time.sleep(1)  # the meter exits the process at the last tick


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    main()
