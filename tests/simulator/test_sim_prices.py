"""Price paths and the publisher's schedule: deterministic, seedable, cheap for many symbols."""

from __future__ import annotations

import time
from decimal import Decimal

import aiohttp
from conftest import MakeSim
from hypothesis import given, settings
from hypothesis import strategies as st
from sim_helpers import ask, collect

from foxtrot_stream_binance.simulator import SimulatorConfig, synthetic_symbols
from foxtrot_stream_binance.simulator.market import Market
from foxtrot_stream_binance.simulator.prices import UNIT, PricePath, fmt


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


async def test_one_connection_with_a_thousand_streams_keeps_up(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(symbols=(), synthetic=3000, rate=2.0, ping_interval=10.0)
    names = [f"{s.lower()}@bookTicker" for s in list(sim.paths)[:1000]]
    async with http.ws_connect(f"{sim.ws_url}/stream") as ws:
        subscribe = {"method": "SUBSCRIBE", "params": names, "id": 1}
        assert await ask(ws, subscribe) == {"result": None, "id": 1}
        started = time.monotonic()
        frames = await collect(ws, 0.6)
        elapsed = time.monotonic() - started
    assert all(m.type is aiohttp.WSMsgType.TEXT for m in frames)
    assert len(frames) >= 0.8 * 2.0 * 1000 * elapsed  # 2/s for 1000 streams, all delivered
