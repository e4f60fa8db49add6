"""Binance frame decoding: the adapter's handler (msgspec) against bare `json.loads`,
`orjson.loads` and the handler's own msgspec decoder.

Frames are the simulator's own (combined-stream bookTicker and trade, as Binance sends them),
pre-encoded, so only decoding is measured. Run: `uv run python benchmarks/decode.py`.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from decimal import Decimal

import orjson

from foxtrot_stream.contract.model import Tick, TransportKind
from foxtrot_stream_binance.adapter import BinanceAdapter, _decode_combined

N = 200_000
ROUNDS = 5


def frames(n: int) -> list[bytes]:
    out = []
    u, t = 400_900_000, 1_000
    for i in range(n):
        if i % 4 == 3:
            t += 1
            payload = (
                f'{{"e":"trade","E":1672515782136,"s":"BTCUSDT","t":{t},"p":"25.36000000",'
                f'"q":"1.00000000","T":1672515782134,"m":true,"M":true}}'
            )
            stream = "btcusdt@trade"
        else:
            u += 1
            payload = (
                f'{{"u":{u},"s":"BTCUSDT","b":"25.{3500 + i % 97:04d}0000","B":"31.21000000",'
                f'"a":"25.{3600 + i % 89:04d}0000","A":"40.66000000"}}'
            )
            stream = "btcusdt@bookTicker"
        out.append(f'{{"stream":"{stream}","data":{payload}}}'.encode())
    return out


class NoEvents:
    def control_response(self, request_id: int, error: str | None) -> None: ...
    def malformed(self, reason: str, frame: str | bytes) -> None:
        raise AssertionError(reason)

    def server_shutdown(self) -> None: ...


def rate(run: Callable[[list[bytes]], None], data: list[bytes]) -> float:
    best = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        run(data)
        best.append(len(data) / (time.perf_counter() - start))
    return statistics.median(best)


def bare_json(data: list[bytes]) -> None:
    loads = json.loads
    for f in data:
        loads(f)


def bare_orjson(data: list[bytes]) -> None:
    loads = orjson.loads
    for f in data:
        loads(f)


def adapter_decode(data: list[bytes]) -> None:
    sink: list[Tick] = []
    handler = BinanceAdapter().make_handler(sink.append, NoEvents())
    for f in data:
        handler(f, 0)


def bare_orjson_tick(data: list[bytes]) -> None:
    """The floor: orjson plus a typed tick per bookTicker, no state, no checks."""
    loads = orjson.loads
    out: list[Tick] = []
    ws = TransportKind.WEBSOCKET
    for f in data:
        d = loads(f)["data"]
        if "b" in d:
            out.append(
                Tick(
                    "binance", d["s"], float(d["b"]), float(d["B"]), float(d["a"]),
                    float(d["A"]), None, d["u"], None, None, 0, ws,
                )
            )  # fmt: skip


def bare_msgspec(data: list[bytes]) -> None:
    """The handler's decoder alone: typed structs, prices parsed to float, types checked."""
    decode = _decode_combined
    for f in data:
        decode(f)


def bare_msgspec_tick(data: list[bytes]) -> None:
    """The handler's decoder and a typed tick per bookTicker, no state, no checks."""
    decode = _decode_combined
    out: list[Tick] = []
    ws = TransportKind.WEBSOCKET
    for f in data:
        d = decode(f).data
        if d.u is not None:
            out.append(Tick("binance", d.s, d.b, d.B, d.a, d.A, None, d.u, None, None, 0, ws))


def orjson_float_fields(data: list[bytes]) -> None:
    loads = orjson.loads
    for f in data:
        d = loads(f)["data"]
        if "b" in d:
            (float(d["b"]), float(d["B"]), float(d["a"]), float(d["A"]))


def orjson_decimal_fields(data: list[bytes]) -> None:
    loads = orjson.loads
    for f in data:
        d = loads(f)["data"]
        if "b" in d:
            (Decimal(d["b"]), Decimal(d["B"]), Decimal(d["a"]), Decimal(d["A"]))


def main() -> None:
    data = frames(N)
    results = {
        "json.loads": rate(bare_json, data),
        "orjson.loads": rate(bare_orjson, data),
        "bare orjson + typed Tick": rate(bare_orjson_tick, data),
        "msgspec decode (the handler's)": rate(bare_msgspec, data),
        "bare msgspec + typed Tick": rate(bare_msgspec_tick, data),
        "adapter handler (msgspec + state + Tick)": rate(adapter_decode, data),
        "orjson + 4 x float()": rate(orjson_float_fields, data),
        "orjson + 4 x Decimal()": rate(orjson_decimal_fields, data),
    }
    base = results["orjson.loads"]
    print(f"{N} frames, median of {ROUNDS} rounds, one core")
    for name, r in results.items():
        print(f"  {name:<42} {r / 1000:8.0f}k frames/s  {1e9 / r:6.0f} ns/frame  {r / base:5.2f}x")
    a = results["adapter handler (msgspec + state + Tick)"]
    print(f"adapter / json.loads = {a / results['json.loads']:.2f}")
    print(f"adapter / orjson.loads = {a / base:.2f}")
    print(f"adapter / bare orjson + typed Tick = {a / results['bare orjson + typed Tick']:.2f}")
    print(f"adapter / bare msgspec + typed Tick = {a / results['bare msgspec + typed Tick']:.2f}")


if __name__ == "__main__":
    main()
