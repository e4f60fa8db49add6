"""The toy plugin (public API only: text heartbeat, no ids, per-item answers) passes the kit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from toy_exchange import ToyExchange
from toy_plugin import ToyPlugin

from foxtrot_stream.contract.plugins import GROUP, Origin, PluginHost, discover_entry_points
from foxtrot_stream.testing.kit import ConformanceSuite, KitExchange

SYMBOLS = ("AAA", "BBB", "CCC")


class _Served:
    def __init__(self, exchange: ToyExchange) -> None:
        self.exchange = exchange
        self.ws_url = exchange.rest_url.replace("http://", "ws://")
        self.http_url = exchange.rest_url

    def refuse_subscription(self, symbol: str) -> None:
        self.exchange.refused.add(symbol)


@asynccontextmanager
async def serve() -> AsyncIterator[_Served]:
    async with ToyExchange(SYMBOLS, rate=10.0, idle=2.0) as exchange:
        yield _Served(exchange)


def keys(ws_url: str, http_url: str) -> dict[str, Any]:
    return {"toy.ws_url": f"{ws_url}/ws", "toy.rest_url": http_url}


class TestToyConformance(ConformanceSuite):
    def kit_exchange(self) -> KitExchange:
        return KitExchange("toy", SYMBOLS[:2], serve, keys, refusable=SYMBOLS[2])

    def kit_host(self) -> PluginHost:
        eps = [
            ep
            for ep in discover_entry_points(GROUP)
            if ep.value.split(":")[0].split(".")[0]
            in ("foxtrot_stream", "foxtrot_stream_http_fallback")
        ]
        host = PluginHost.discover(eps)
        host.register(ToyPlugin(idle=2.0), Origin("toy", "tests", "tests", "0"))
        return host
