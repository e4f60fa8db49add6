"""The OKX plugin passes the conformance kit, against its simulator behind the kit's proxy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from foxtrot_stream.testing.kit import ConformanceSuite, KitExchange
from foxtrot_stream_okx.simulator import OkxSimulator

SYMBOLS = ("BTC-USDT", "ETH-USDT", "SOL-USDT")


class _Served:
    def __init__(self, sim: OkxSimulator) -> None:
        self.sim = sim
        self.ws_url = sim.ws_url
        self.http_url = sim.rest_url

    def refuse_subscription(self, symbol: str) -> None:
        self.sim.refuse_subscription(symbol)


@asynccontextmanager
async def serve() -> AsyncIterator[_Served]:
    async with OkxSimulator(SYMBOLS, rate=10.0, idle=30.0) as sim:
        yield _Served(sim)


def keys(ws_url: str, http_url: str) -> dict[str, Any]:
    return {"okx.ws_url": f"{ws_url}/ws/v5/public", "okx.rest_url": http_url}


class TestOkxConformance(ConformanceSuite):
    def kit_exchange(self) -> KitExchange:
        return KitExchange("okx", SYMBOLS[:2], serve, keys, refusable=SYMBOLS[2])
