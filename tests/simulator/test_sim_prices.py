"""Price paths and the publisher's schedule: deterministic and seedable, in the model and on
the wire; cheap for thousands of symbols, which are served without falling behind."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from typing import Any

import aiohttp
from hypothesis import given, settings
from hypothesis import strategies as st

from foxtrot_stream_binance.simulator import Simulator, SimulatorConfig, synthetic_symbols
from foxtrot_stream_binance.simulator.market import Market
from foxtrot_stream_binance.simulator.prices import UNIT, PricePath, fmt

from simwire import check_book_ticker, check_combined, running, stream_url, strictly_increasing


def _run(path: PricePath, steps: int) -> list[tuple[int, ...]]:
    out = []
    for i in range(steps):
        traded = path.step(0.5, i)
        out.append((path.update_id, path.bid, path.ask, path.bid_qty, path.ask_qty, traded))
    return out


def test_same_seed_same_path_whatever_the_other_symbols() -> None:
    alone = PricePath.create("BTCUSDT", seed=3)
    among = Market(SimulatorConfig(symbols=("ETHUSDT", "BTCUSDT", "XRPUSDT"), seed=3))
    assert _run(alone, 200) == _run(among.paths["BTCUSDT"], 200)
    assert _run(PricePath.create("BTCUSDT", seed=4), 200) != _run(
        PricePath.create("BTCUSDT", seed=3), 200
    )


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32), symbol=st.sampled_from(["BTCUSDT", "S0042USDT", "PEPEUSDT"]))
def test_paths_are_well_formed(seed: int, symbol: str) -> None:
    path = PricePath.create(symbol, seed)
    last_u, last_trade = path.update_id, path.trade_id
    for i in range(300):
        traded = path.step(0.3, i)
        assert path.update_id > last_u  # increasing, not necessarily by one
        assert 0 < path.bid < path.ask and path.bid_qty > 0 and path.ask_qty > 0
        assert path.trade_id == last_trade + traded
        if traded:
            assert path.last_price in (path.bid, path.ask) and path.trade_us == i
        last_u, last_trade = path.update_id, path.trade_id
    bids, asks = path.levels(20)
    assert bids[0] == (path.bid, path.bid_qty) and asks[0] == (path.ask, path.ask_qty)
    assert [p for p, _ in bids] == sorted((p for p, _ in bids), reverse=True)


@given(st.integers(0, 10**18))
def test_fmt_is_exact(units: int) -> None:
    assert Decimal(fmt(units)) == Decimal(units) / UNIT and len(fmt(units).split(".")[1]) == 8


def test_schedule_gives_each_symbol_its_rate() -> None:
    config = SimulatorConfig(
        symbols=("BTCUSDT", "ETHUSDT", "BNBUSDT"),
        rate=10.0,
        rates={"ETHUSDT": 0.0, "BNBUSDT": 2.5},
        statuses={"XRPUSDT": "HALT"},
    )
    market = Market(config)
    market.start(100.0)
    counts: dict[str, int] = {}
    for now in (100.25, 100.5, 101.0, 102.0):  # uneven calls: the count only depends on time
        for path, _traded in market.advance(now, 0):
            counts[path.symbol] = counts.get(path.symbol, 0) + 1
    assert counts == {"BTCUSDT": 20, "BNBUSDT": 5}
    market.set_rate("ETHUSDT", 4.0, 102.0)
    market.set_rate("BTCUSDT", 0.0, 102.0)
    counts = {}
    for path, _traded in market.advance(103.0, 0):
        counts[path.symbol] = counts.get(path.symbol, 0) + 1
    assert counts == {"ETHUSDT": 4, "BNBUSDT": 2} or counts == {"ETHUSDT": 4, "BNBUSDT": 3}


def test_a_blocked_loop_skips_ahead_rather_than_bursting() -> None:
    market = Market(SimulatorConfig(symbols=("BTCUSDT",), rate=100.0))
    market.start(0.0)
    assert sum(1 for _ in market.advance(60.0, 0)) <= 101 + 1


def test_thousands_of_symbols_cost_little() -> None:
    config = SimulatorConfig(symbols=(), synthetic=5000, rate=4.0)
    market = Market(config)
    assert len(market.paths) == 5000 and len(set(synthetic_symbols(5000))) == 5000
    market.start(0.0)
    started = time.process_time()
    steps = sum(1 for _ in market.advance(1.0, 0))
    spent = time.process_time() - started
    assert steps == 20_000
    assert spent < 0.5, f"{steps} updates took {spent:.3f} s of CPU"


N = 25
"""bookTicker payloads compared per symbol."""


async def _first_payloads(sim: Simulator, symbols: tuple[str, ...]) -> dict[str, list[Any]]:
    """The first N bookTicker payloads of each symbol, and its trades up to then with their
    times (E, T) left out. The simulator starts silent (rate 0): nothing is missed."""
    names = [f"{s.lower()}@{kind}" for s in symbols for kind in ("bookTicker", "trade")]
    out: dict[str, list[Any]] = {s: [] for s in symbols}
    books = dict.fromkeys(symbols, 0)
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(stream_url(sim, *names)) as ws,
    ):
        for symbol in symbols:
            sim.set_rate(symbol, 200.0)
        deadline = time.monotonic() + 3.0
        while min(books.values()) < N:
            assert time.monotonic() < deadline, books
            msg = await ws.receive(timeout=1.0)
            assert msg.type is aiohttp.WSMsgType.TEXT, msg
            symbol, kind, data = check_combined(json.loads(msg.data))
            if books[symbol] >= N:
                continue
            if kind == "bookTicker":
                books[symbol] += 1
                out[symbol].append(msg.data.encode())  # byte for byte
            else:
                out[symbol].append({k: v for k, v in data.items() if k not in ("E", "T")})
    return out


async def test_same_seed_same_prices_different_seed_different_prices() -> None:
    both = ("BTCUSDT", "ETHUSDT")
    async with (
        running(symbols=both, rate=0.0, seed=42) as first,
        running(symbols=both, rate=0.0, seed=42) as second,
        running(symbols=both, rate=0.0, seed=43) as other,
        # a path depends on (seed, symbol) only, not on the other symbols listed
        running(symbols=("SOLUSDT", "BTCUSDT"), rate=0.0, seed=42) as shuffled,
    ):
        a, b, c, d = await asyncio.gather(
            _first_payloads(first, both),
            _first_payloads(second, both),
            _first_payloads(other, both),
            _first_payloads(shuffled, ("BTCUSDT",)),
        )
    for symbol in both:
        assert sum(isinstance(x, bytes) for x in a[symbol]) == N
        assert any(isinstance(x, dict) for x in a[symbol]), "some trades"
        assert a[symbol] == b[symbol]
        assert a[symbol] != c[symbol]
        books_a = [x for x in a[symbol] if isinstance(x, bytes)]
        books_c = [x for x in c[symbol] if isinstance(x, bytes)]
        assert not set(books_a) & set(books_c)
    assert d["BTCUSDT"] == a["BTCUSDT"]


async def test_the_opening_book_is_seeded_too() -> None:
    async def opening(sim: Simulator) -> tuple[Any, Any]:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{sim.rest_url}/api/v3/ticker/bookTicker") as r:
                rows = await r.json()
            async with http.get(f"{sim.rest_url}/api/v3/depth?symbol=S0007USDT&limit=20") as r:
                book = await r.json()
        return rows, book

    async with (
        running(symbols=(), synthetic=50, rate=0.0, seed=5) as first,
        running(symbols=(), synthetic=50, rate=0.0, seed=5) as second,
        running(symbols=(), synthetic=50, rate=0.0, seed=6) as other,
    ):
        a, b, c = [await opening(sim) for sim in (first, second, other)]
    assert a == b
    assert a[0] != c[0] and a[1] != c[1]


async def test_two_thousand_symbols_at_a_modest_rate_keep_up() -> None:
    symbols = synthetic_symbols(2000)
    rate, seconds = 2.0, 1.2
    async with (
        running(symbols=(), synthetic=2000, rate=rate) as sim,
        aiohttp.ClientSession() as http,
    ):
        sockets = [await http.ws_connect(f"{sim.ws_url}/ws") for _ in range(2)]
        for i, ws in enumerate(sockets):  # 1000 streams each: under 1024 per connection
            names = [f"{s.lower()}@bookTicker" for s in symbols[i * 1000 : (i + 1) * 1000]]
            await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": names, "id": i}))
        seen: dict[str, list[int]] = {}
        lags: list[float] = []

        async def read(ws: aiohttp.ClientWebSocketResponse, until: float) -> None:
            while (left := until - time.monotonic()) > 0:
                try:
                    msg = await ws.receive(timeout=left)
                except TimeoutError:
                    return
                assert msg.type is aiohttp.WSMsgType.TEXT, msg
                frame = json.loads(msg.data)
                if "result" in frame:
                    assert frame["result"] is None, frame
                    continue
                check_book_ticker(frame)
                seen.setdefault(frame["s"], []).append(frame["u"])

        async def watch_lag(until: float) -> None:
            while time.monotonic() < until:
                lags.append(time.monotonic() - sim.market.next_due())
                await asyncio.sleep(0.05)

        until = time.monotonic() + seconds
        await asyncio.gather(*(read(ws, until) for ws in sockets), watch_lag(until))
        for ws in sockets:
            await ws.close()
        assert sim.stats.slow_consumer_drops == 0

    assert set(seen) == set(symbols), f"{len(set(symbols) - set(seen))} symbols never updated"
    total = sum(len(ids) for ids in seen.values())
    expected = len(symbols) * rate * seconds
    assert total >= 0.85 * expected, (total, expected)
    assert all(strictly_increasing(ids) for ids in seen.values())
    # due updates go out on time: the publisher is never more than a fraction of a second late
    assert max(lags) < 0.25, max(lags)
