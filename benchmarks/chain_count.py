"""Instructions per frame of the decode → sequencer → consumer chain without a socket, under
callgrind: where `full_path_count.py`'s total goes once aiohttp is taken out.

Frames (`full_path.py`'s stream) are fed in a loop to:

- `orjson`, `msgspec`: the bare decoders of `full_path.py`, each building a `Tick` per bookTicker;
- `handler`: the Binance handler with a no-op sink;
- `sequenced`: the handler → `Sequencer.streamed` (→ metrics sample → the benchmark's counting
  consumer), as the feed wires them;
- `proxied`: the same through `WebSocketConnection`'s sink indirection (a bound method that
  calls the current sink), as on the real path;
- `none`: only builds the frames (subtracted from the others).

    uv run python benchmarks/chain_count.py                 # all of them, about 8 minutes
    uv run python benchmarks/chain_count.py handler proxied

Each receiver runs under callgrind for 20,000 and 60,000 frames; the difference divided by
40,000, minus the same for `none`, is its cost per frame.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import full_path as fp
from full_path_count import callgrind_total

from foxtrot_stream.config.settings import load
from foxtrot_stream.contract.model import Tick
from foxtrot_stream.contract.plugins import PluginHost
from foxtrot_stream.runtime.feed import Feed

SIZES = (20_000, 60_000)
MODES = ("orjson", "msgspec", "handler", "sequenced", "proxied")


class _Events:
    def control_response(self, request_id: int, error: str | None) -> None: ...

    def malformed(self, reason: str, frame: str | bytes) -> None:
        raise AssertionError(reason)

    def server_shutdown(self) -> None: ...


class _Proxy:
    """`WebSocketConnection._sink_proxy`'s shape: a bound method calling the current sink."""

    def __init__(self, sink: Callable[[Tick], None]) -> None:
        self._sink = sink

    def sink(self, tick: Tick) -> None:
        self._sink(tick)


def _noop(tick: Tick) -> None:
    pass


def run(mode: str, n: int) -> None:
    frames, _ = fp.payloads(n, fp.symbols())
    text = [f.decode() for f in frames]  # the bare loops get str, as aiohttp gives them
    if mode in ("orjson", "msgspec"):
        decode = fp.decode_orjson_tick if mode == "orjson" else fp.decode_msgspec_tick
        for f in text:
            decode(f)
        return
    if mode == "none":
        return
    host = PluginHost.discover()
    values = {"websocket.enabled": True, "binance.ws_url": "ws://127.0.0.1:1"}
    settings = load(text=json.dumps(values), schema=host.schema()).settings
    feed = Feed(host, settings, "binance", connect_budgets={})
    feed.add_consumer(fp.Meter(10**9, False).tick)
    sink = {
        "handler": _noop,
        "sequenced": feed.sequencer.streamed,
        "proxied": _Proxy(feed.sequencer.streamed).sink,
    }[mode]
    handler = feed.adapter.make_handler(sink, _Events())
    now = time.time_ns
    for f in frames:
        handler(f, now())


def _total(mode: str, n: int) -> int:
    out = os.path.join(tempfile.gettempdir(), f"chain_count.{mode}.{n}")
    return callgrind_total([os.path.abspath(__file__), "--run", mode, str(n)], out)


def per_frame(mode: str) -> float:
    small, large = (_total(mode, n) for n in SIZES)
    return (large - small) / (SIZES[1] - SIZES[0])


if __name__ == "__main__":
    if sys.argv[1:2] == ["--run"]:
        run(sys.argv[2], int(sys.argv[3]))
    else:
        base = per_frame("none")
        for mode in sys.argv[1:] or MODES:
            print(f"  {mode:<10} {per_frame(mode) - base:8,.0f} instructions per frame", flush=True)
