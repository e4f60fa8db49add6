"""The Binance plugin passes the conformance kit, against its simulator behind the kit's proxy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from foxtrot_stream.testing.kit import ConformanceSuite, KitExchange
from foxtrot_stream_binance.simulator import Simulator, SimulatorConfig

SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT")


class _Served:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.ws_url = sim.ws_url
        self.http_url = sim.rest_url

    def refuse_subscription(self, symbol: str) -> None:
        self.sim.refuse_subscriptions(3600.0, [symbol])


@asynccontextmanager
async def serve() -> AsyncIterator[_Served]:
    config = SimulatorConfig(symbols=SYMBOLS, rate=10.0, ping_interval=0.5, pong_timeout=2.0)
    async with Simulator(config) as sim:
        yield _Served(sim)


def keys(ws_url: str, http_url: str) -> dict[str, Any]:
    return {"binance.ws_url": ws_url, "binance.rest_url": http_url}


class TestBinanceConformance(ConformanceSuite):
    def kit_exchange(self) -> KitExchange:
        return KitExchange("binance", SYMBOLS[:2], serve, keys, refusable=SYMBOLS[2])
