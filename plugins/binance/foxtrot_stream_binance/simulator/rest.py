"""The REST endpoints the adapter uses, with Binance's request weights and limits.

A middleware does the accounting for every `/api/` request (weight, `X-MBX-USED-WEIGHT-1M`,
429 then 418 with `Retry-After`, injected errors and delays), so the handlers only answer.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from aiohttp import web

from foxtrot_stream_binance.simulator.config import SimulatorConfig
from foxtrot_stream_binance.simulator.faults import Faults
from foxtrot_stream_binance.simulator.market import Market
from foxtrot_stream_binance.simulator.prices import PricePath, fmt
from foxtrot_stream_binance.simulator.stats import SimulatorStats
from foxtrot_stream_binance.simulator.weights import (
    WEIGHTS,
    ApiError,
    WeightLimiter,
    depth_limit,
    retry_after,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_SYMBOL = re.compile(r"^[A-Z0-9-_.]{1,20}$")
_SYMBOLS_RANGE = r'^\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\]$'
_QUOTES = ("USDT", "USDC", "FDUSD", "BTC", "ETH", "BNB", "EUR", "TRY")


def _mandatory(name: str) -> ApiError:
    return ApiError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


class RestApi:
    def __init__(
        self,
        config: SimulatorConfig,
        market: Market,
        faults: Faults,
        stats: SimulatorStats,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config, self.market, self.faults, self.stats = config, market, faults, stats
        self.clock = clock
        self.limiter = WeightLimiter(config, clock())
        self._symbol_info: dict[str, dict[str, Any]] | None = None

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/api/v3/ping", self._ping)
        app.router.add_get("/api/v3/time", self._time)
        app.router.add_get("/api/v3/exchangeInfo", self._exchange_info)
        app.router.add_get("/api/v3/ticker/bookTicker", self._book_ticker)
        app.router.add_get("/api/v3/ticker/price", self._price)
        app.router.add_get("/api/v3/depth", self._depth)

    # --- accounting -------------------------------------------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/api/"):
            return await handler(request)
        st = self.stats
        st.rest_requests += 1
        st.rest_by_path[request.path] = st.rest_by_path.get(request.path, 0) + 1
        st.rest_longest_query = max(st.rest_longest_query, len(request.query_string))
        delay = self.faults.rest_delay(self.clock())
        st.rest_holds.append(delay)
        if delay > 0:
            await asyncio.sleep(delay)
        response = await self._answer(request, handler)
        now = self.clock()
        self.limiter.roll(now)
        response.headers["X-MBX-USED-WEIGHT-1M"] = str(self.limiter.used)
        return response

    async def _answer(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        now = self.clock()
        injected = self.faults.take_rest_error()
        if injected is not None:
            self.stats.rest_injected += 1
            return self._refusal(*injected)
        weigh = WEIGHTS.get(request.path)
        refused = self.limiter.charge(weigh(request.query) if weigh else 1, now)
        if refused is not None:
            return self._refusal(*refused)
        try:
            return await handler(request)
        except ApiError as exc:
            return self._json({"code": exc.code, "msg": exc.msg}, exc.status)
        except web.HTTPException as exc:  # 404, 405: answered like any other
            return web.Response(status=exc.status, text=exc.text, headers=exc.headers)

    def _refusal(self, status: int, seconds: float) -> web.Response:
        if status == 429:
            self.stats.rest_throttled += 1
            window = "1 MINUTE" if self.limiter.window == 60 else f"{self.limiter.window:g} SECOND"
            msg = (
                f"Too much request weight used; current limit is {self.limiter.limit} request "
                f"weight per {window}. Please use WebSocket Streams for live updates to avoid "
                "polling the API."
            )
        elif status == 418:
            self.stats.rest_banned += 1
            until = int((time.time() + seconds) * 1000)
            msg = (
                f"Way too much request weight used; IP banned until {until}. Please use "
                "WebSocket Streams for live updates to avoid bans."
            )
        elif status == 403:
            return web.Response(status=403, text="<html><body>403 Forbidden</body></html>")
        else:
            return self._json(
                {"code": -1000, "msg": "An unknown error occurred while processing the request."},
                status,
            )
        response = self._json({"code": -1003, "msg": msg}, status)
        response.headers["Retry-After"] = retry_after(seconds)
        return response

    @staticmethod
    def _json(obj: Any, status: int = 200) -> web.Response:
        return web.Response(body=orjson.dumps(obj), status=status, content_type="application/json")

    # --- parameters --------------------------------------------------------------------------

    def _path(self, symbol: str) -> PricePath:
        if not _SYMBOL.match(symbol):
            raise ApiError(
                -1100,
                "Illegal characters found in parameter 'symbol'; legal range is "
                "'^[A-Z0-9-_.]{1,20}$'.",
            )
        path = self.market.paths.get(symbol)
        if path is None:
            raise ApiError(-1121, "Invalid symbol.")
        return path

    def _wanted(self, query: Mapping[str, str]) -> tuple[list[PricePath], bool]:
        """The symbols asked for (`symbol=X`, `symbols=[…]` or neither: all), and whether
        the answer is a single object."""
        if "symbol" in query and "symbols" in query:
            raise ApiError(-1128, "Combination of optional parameters invalid.")
        if "symbol" in query:
            return [self._path(query["symbol"])], True
        if "symbols" not in query:
            return list(self.market.paths.values()), False
        try:
            names = orjson.loads(query["symbols"])
        except orjson.JSONDecodeError:
            names = None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ApiError(
                -1100,
                f"Illegal characters found in parameter 'symbols'; legal range is "
                f"'{_SYMBOLS_RANGE}'.",
            )
        if not names:
            raise _mandatory("symbols")
        if len(set(names)) < len(names):
            raise ApiError(-1101, "Duplicate values for a parameter detected.")
        return [self._path(n) for n in names], False

    # --- endpoints ---------------------------------------------------------------------------

    async def _ping(self, _request: web.Request) -> web.Response:
        return self._json({})

    async def _time(self, _request: web.Request) -> web.Response:
        return self._json({"serverTime": self.config.now_us() // 1000})

    async def _book_ticker(self, request: web.Request) -> web.Response:
        paths, single = self._wanted(request.query)
        rows = [book_row(p) for p in paths]
        return self._json(rows[0] if single else rows)

    async def _price(self, request: web.Request) -> web.Response:
        paths, single = self._wanted(request.query)
        rows = [{"symbol": p.symbol, "price": fmt(p.last_price)} for p in paths]
        return self._json(rows[0] if single else rows)

    async def _depth(self, request: web.Request) -> web.Response:
        symbol = request.query.get("symbol")
        if not symbol:
            raise _mandatory("symbol")
        path = self._path(symbol)
        bids, asks = path.levels(depth_limit(request.query))
        return self._json(
            {
                "lastUpdateId": path.update_id,
                "bids": [[fmt(p), fmt(q)] for p, q in bids],
                "asks": [[fmt(p), fmt(q)] for p, q in asks],
            }
        )

    async def _exchange_info(self, request: web.Request) -> web.Response:
        paths, _single = self._wanted(request.query)
        info = self._symbols_info()
        return self._json(
            {
                "timezone": "UTC",
                "serverTime": self.config.now_us() // 1000,
                "rateLimits": [
                    {
                        "rateLimitType": "REQUEST_WEIGHT",
                        "interval": "MINUTE",
                        "intervalNum": 1,
                        "limit": self.config.weight_limit,
                    },
                    {
                        "rateLimitType": "ORDERS",
                        "interval": "SECOND",
                        "intervalNum": 10,
                        "limit": 100,
                    },
                    {
                        "rateLimitType": "ORDERS",
                        "interval": "DAY",
                        "intervalNum": 1,
                        "limit": 200000,
                    },
                    {
                        "rateLimitType": "RAW_REQUESTS",
                        "interval": "MINUTE",
                        "intervalNum": 5,
                        "limit": 61000,
                    },
                ],
                "exchangeFilters": [],
                "symbols": [info[p.symbol] for p in paths],
            }
        )

    def _symbols_info(self) -> dict[str, dict[str, Any]]:
        if self._symbol_info is None:  # static: built once, even for thousands of symbols
            statuses = self.config.statuses
            self._symbol_info = {
                s: symbol_info(p, statuses.get(s, "TRADING")) for s, p in self.market.paths.items()
            }
        return self._symbol_info


def book_row(p: PricePath) -> dict[str, str]:
    """A REST bookTicker row: the same state the last published `@bookTicker` frame carried."""
    return {
        "symbol": p.symbol,
        "bidPrice": fmt(p.bid),
        "bidQty": fmt(p.bid_qty),
        "askPrice": fmt(p.ask),
        "askQty": fmt(p.ask_qty),
    }


def symbol_info(p: PricePath, status: str) -> dict[str, Any]:
    quote = next((q for q in _QUOTES if p.symbol.endswith(q) and p.symbol != q), p.symbol[-3:])
    return {
        "symbol": p.symbol,
        "status": status,
        "baseAsset": p.symbol[: -len(quote)],
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": fmt(p.tick),
                "maxPrice": "1000000.00000000",
                "tickSize": fmt(p.tick),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": "0.00010000",
                "maxQty": "9000.00000000",
                "stepSize": "0.00010000",
            },
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
    }
