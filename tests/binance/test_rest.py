"""The adapter's REST side against the simulator: batching, weights, 429/418, refused symbols."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from foxtrot_stream.contract.records import PollError
from foxtrot_stream_binance.adapter import BinanceAdapter
from foxtrot_stream_binance.settings import BinanceSettings
from foxtrot_stream_binance.simulator import Simulator, SimulatorConfig


@pytest.fixture
async def env() -> AsyncIterator[tuple[Simulator, BinanceAdapter, aiohttp.ClientSession]]:
    config = SimulatorConfig(
        symbols=("BTCUSDT", "ETHUSDT", "HALTUSDT"), statuses={"HALTUSDT": "HALT"}, rate=5.0
    )
    async with Simulator(config) as sim, aiohttp.ClientSession() as session:
        settings = BinanceSettings(ws_url=sim.ws_url, rest_url=sim.rest_url)  # type: ignore[arg-type]
        yield sim, BinanceAdapter(settings), session


async def test_one_request_for_many_symbols_with_weight(env) -> None:  # type: ignore[no-untyped-def]
    sim, adapter, session = env
    result = await adapter.poll(session, ["BTCUSDT", "ETHUSDT"])
    assert {t.symbol for t in result.ticks} == {"BTCUSDT", "ETHUSDT"}
    assert sim.stats.rest_by_path["/api/v3/ticker/bookTicker"] == 1
    assert result.used_weight == 4
    t = next(t for t in result.ticks if t.symbol == "BTCUSDT")
    assert t.transport.value == "http" and t.seq is None and t.bid < t.ask
    assert result.requested_ns <= t.received_ts


async def test_429_and_418_carry_retry_after(env) -> None:  # type: ignore[no-untyped-def]
    sim, adapter, session = env
    sim.rest_errors(429, 1, retry_after=3.0)
    limited = await adapter.poll(session, ["BTCUSDT", "ETHUSDT"])
    assert (limited.retry_after, limited.banned, limited.ticks) == (3.0, False, ())
    sim.rest_errors(418, 1, retry_after=120.0)
    banned = await adapter.poll(session, ["BTCUSDT"])
    assert (banned.retry_after, banned.banned) == (120.0, True)


async def test_5xx_is_a_poll_error(env) -> None:  # type: ignore[no-untyped-def]
    sim, adapter, session = env
    sim.rest_errors(500, 1)
    with pytest.raises(PollError, match="500"):
        await adapter.poll(session, ["BTCUSDT"])


async def test_an_invalid_symbol_in_a_batch_is_isolated_and_named(env) -> None:  # type: ignore[no-untyped-def]
    _sim, adapter, session = env
    result = await adapter.poll(session, ["BTCUSDT", "NOPEUSDT", "ETHUSDT"])
    assert {t.symbol for t in result.ticks} == {"BTCUSDT", "ETHUSDT"}
    assert set(result.invalid) == {"NOPEUSDT"}
    assert "NOPEUSDT" in result.invalid["NOPEUSDT"]


async def test_symbols_are_validated_against_exchange_info(env) -> None:  # type: ignore[no-untyped-def]
    sim, adapter, session = env
    check = await adapter.validate_symbols(session, ["BTCUSDT", "NOPEUSDT", "HALTUSDT"])
    assert check.valid == ("BTCUSDT",)
    assert check.invalid == {
        "NOPEUSDT": "NOPEUSDT is not listed on Binance (exchangeInfo)",
        "HALTUSDT": "HALTUSDT is not trading on Binance (status HALT)",
    }
    await adapter.validate_symbols(session, ["ETHUSDT"])
    assert sim.stats.rest_by_path["/api/v3/exchangeInfo"] == 1  # cached


async def test_instruments_come_from_exchange_info_filters(env) -> None:  # type: ignore[no-untyped-def]
    from foxtrot_stream.contract.records import Instrument, Instruments
    from foxtrot_stream_binance.adapter import _instrument
    from foxtrot_stream_binance.simulator.prices import fmt

    sim, adapter, session = env
    assert isinstance(adapter, Instruments)
    listed = {i.symbol: i for i in await adapter.instruments(session)}
    assert set(listed) == {"BTCUSDT", "ETHUSDT", "HALTUSDT"}
    btc = listed["BTCUSDT"]
    assert btc.price_tick == float(fmt(sim.paths["BTCUSDT"].tick))
    assert (btc.min_qty, btc.lot_size, btc.size, btc.product) == (0.0001, 0.0001, 1.0, "SPOT")
    assert btc.trading and not listed["HALTUSDT"].trading
    await adapter.instruments(session)
    assert sim.stats.rest_by_path["/api/v3/exchangeInfo"] == 1  # one exchangeInfo for both
    bare = _instrument({"symbol": "X", "filters": [{"filterType": "LOT_SIZE", "minQty": "?"}]})
    assert bare == Instrument("X", "TRADING", 0.0, 0.0, 0.0)


async def test_callers_at_start_share_one_exchange_info(env) -> None:  # type: ignore[no-untyped-def]
    """`run --all` with a sink lists symbols and instruments at once: one request for both,
    even for a caller given up on meanwhile; a failed request fails its callers and the next
    call asks again."""
    sim, adapter, session = env
    sim.slow_rest(30, delay=0.1)
    gave_up = asyncio.create_task(adapter.trading_symbols(session))
    both = asyncio.gather(adapter.trading_symbols(session), adapter.instruments(session))
    await asyncio.sleep(0.02)
    gave_up.cancel()
    symbols, instruments = await both
    assert symbols == ("BTCUSDT", "ETHUSDT") and len(instruments) == 3
    assert sim.stats.rest_by_path["/api/v3/exchangeInfo"] == 1
    sim.clear()
    sim.rest_errors(500, 1)
    failed = await asyncio.gather(
        adapter.listed(session, refresh=True), adapter.listed(session, refresh=True),
        return_exceptions=True,
    )  # fmt: skip
    assert all(isinstance(f, PollError) for f in failed), failed
    assert sim.stats.rest_by_path["/api/v3/exchangeInfo"] == 2
    assert set(await adapter.listed(session, refresh=True)) == {"BTCUSDT", "ETHUSDT", "HALTUSDT"}
    assert sim.stats.rest_by_path["/api/v3/exchangeInfo"] == 3
