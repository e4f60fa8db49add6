"""A peer we did not write: the `websockets` library against the simulator.

It parses frames, answers the server's pings and closes on its own; the simulator must look
to it exactly as `binance-protocol.md` describes Binance.
"""

from __future__ import annotations

import json
import time

import websockets
from simwire import (
    check_book_ticker,
    check_combined,
    eventually,
    running,
    stream_url,
    strictly_increasing,
)
from websockets.exceptions import ConnectionClosedError
from websockets.protocol import State

# 4 pongs a second stay under the 5-messages-a-second limit; 0.5 s without a pong is fatal
HEARTBEAT = {"ping_interval": 0.25, "pong_timeout": 0.5}


async def test_combined_stream_is_well_formed_and_survives_the_pong_timeout() -> None:
    async with running(symbols=("BTCUSDT", "ETHUSDT"), rate=50.0, **HEARTBEAT) as sim:
        url = stream_url(sim, "btcusdt@bookTicker", "btcusdt@trade")
        frames: list[str | bytes] = []
        async with websockets.connect(url, proxy=None) as ws:
            started = time.monotonic()
            # three times the pong timeout: only answered pings keep the connection
            while time.monotonic() - started < 1.5:
                frames.append(await ws.recv())
            assert ws.state is State.OPEN
            (conn,) = sim.stats.open_connections()
            assert conn.close_reason is None
            assert conn.pings_sent >= 4
            assert conn.pongs_matched >= conn.pings_sent - 1  # the last may be in flight
            assert sim.stats.pong_timeouts == 0
        await eventually(lambda: not sim.clients, what="the server to see the close")
        assert conn.close_reason == "client"

    assert all(isinstance(f, str) for f in frames), "data goes in text frames"
    parsed = [check_combined(json.loads(f)) for f in frames]
    kinds = {(symbol, kind) for symbol, kind, _ in parsed}
    assert kinds == {("BTCUSDT", "bookTicker"), ("BTCUSDT", "trade")}
    book_ids = [d["u"] for _, kind, d in parsed if kind == "bookTicker"]
    trade_ids = [d["t"] for _, kind, d in parsed if kind == "trade"]
    assert len(book_ids) >= 40 and strictly_increasing(book_ids)
    assert trade_ids and strictly_increasing(trade_ids)


async def test_update_ids_increase_per_symbol_on_a_shared_connection() -> None:
    async with running(symbols=("BTCUSDT", "ETHUSDT", "BNBUSDT"), rate=40.0) as sim:
        url = stream_url(sim, "btcusdt@bookTicker", "ethusdt@bookTicker", "bnbusdt@bookTicker")
        async with websockets.connect(url, proxy=None) as ws:
            frames = [json.loads(await ws.recv()) for _ in range(60)]
    ids: dict[str, list[int]] = {}
    for frame in frames:
        symbol, kind, data = check_combined(frame)
        assert frame["stream"] == f"{symbol.lower()}@bookTicker" and kind == "bookTicker"
        ids.setdefault(symbol, []).append(data["u"])
    assert set(ids) == {"BTCUSDT", "ETHUSDT", "BNBUSDT"}
    assert all(strictly_increasing(u) for u in ids.values()), ids


async def test_raw_stream_sends_bare_payloads() -> None:
    async with (
        running(symbols=("BTCUSDT",), rate=50.0, **HEARTBEAT) as sim,
        websockets.connect(stream_url(sim, "btcusdt@bookTicker", combined=False), proxy=None) as ws,
    ):
        frames = [await ws.recv() for _ in range(20)]
    assert all(isinstance(f, str) for f in frames)
    payloads = [json.loads(f) for f in frames]
    for d in payloads:
        check_book_ticker(d, "BTCUSDT")  # no envelope, no event time
    assert strictly_increasing([d["u"] for d in payloads])


async def test_the_peer_sees_the_rate_limit_close() -> None:
    async with running(symbols=("BTCUSDT",), rate=0.0) as sim:
        async with websockets.connect(f"{sim.ws_url}/ws", proxy=None) as ws:
            for i in range(6):
                await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
            try:
                while True:
                    await ws.recv()
            except ConnectionClosedError as exc:
                closed = exc
        assert closed.rcvd is not None
        assert (closed.rcvd.code, closed.rcvd.reason) == (1008, "Too many requests")
        assert sim.stats.rate_limit_disconnects == 1
