"""A Binance-Spot-compatible market-data server on 127.0.0.1, for tests, demos and benchmarks.

One aiohttp application serves the WebSocket streams (`ws.py`) and the REST endpoints
(`rest.py`) on one port; one publisher loop (`publisher.py`) moves the deterministic price
paths (`market.py`) and fans frames out; faults are scripted through `sim.faults` (`faults.py`),
whose methods are also on the simulator itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Sequence
from typing import Any

from aiohttp import web

from foxtrot_stream_binance.simulator.config import LOOPBACK, SimulatorConfig
from foxtrot_stream_binance.simulator.connection import Connection
from foxtrot_stream_binance.simulator.faults import Faults
from foxtrot_stream_binance.simulator.market import Market
from foxtrot_stream_binance.simulator.prices import PricePath
from foxtrot_stream_binance.simulator.publisher import Publisher
from foxtrot_stream_binance.simulator.rest import RestApi, book_row
from foxtrot_stream_binance.simulator.stats import SimulatorStats
from foxtrot_stream_binance.simulator.ws import StreamServer


@web.middleware
async def _loopback_only(request: web.Request, handler: Any) -> web.StreamResponse:
    # The socket is bound to 127.0.0.1 already; this keeps it so behind any port forwarding.
    if request.remote != LOOPBACK:
        return web.Response(status=403, text="loopback only")
    response: web.StreamResponse = await handler(request)
    return response


class Simulator:
    """`await sim.start()` (or `async with Simulator(config) as sim`), then `await sim.stop()`."""

    def __init__(self, config: SimulatorConfig | None = None, *, host: str = LOOPBACK) -> None:
        if host != LOOPBACK:
            raise ValueError(f"the simulator binds {LOOPBACK} only, not {host!r}")
        self.config = config or SimulatorConfig()
        self.host = host
        self.port = 0
        self.stats = SimulatorStats()
        self.market = Market(self.config)
        self.faults = Faults(shutdown_grace=self.config.shutdown_grace, paths=self.market.paths)
        self.server = StreamServer(self.config, self.market, self.faults, self.stats)
        self.faults.target = self.server
        self.rest = RestApi(self.config, self.market, self.faults, self.stats)
        self._publisher = Publisher(
            self.market,
            self.server,
            self.faults,
            self.config.tick_interval,
            now_us=self.config.now_us,
        )
        self._runner: web.AppRunner | None = None
        self._task: asyncio.Task[None] | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def clients(self) -> dict[int, Connection]:
        """Open WebSocket connections by id."""
        return self.server.clients

    @property
    def paths(self) -> dict[str, PricePath]:
        return self.market.paths

    async def start(self) -> Simulator:
        if self._runner is not None:
            raise RuntimeError("the simulator is already running")
        app = web.Application(middlewares=[_loopback_only, self.rest.middleware])
        app.router.add_get("/ws", self.server.handle)
        app.router.add_get("/ws/{streams:.*}", self.server.handle)
        app.router.add_get("/stream", self.server.handle)
        app.router.add_get("/stream/", self.server.handle)
        self.rest.add_routes(app)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.config.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        self.market.start(time.monotonic())
        self._task = asyncio.create_task(self._publisher.run(), name="simulator-publisher")
        return self

    async def stop(self) -> None:
        """Close every WebSocket, stop the publisher and the server; idempotent."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.server.close_all(self.config.close_timeout + 0.5)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Simulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- control -------------------------------------------------------------------------------

    def set_rate(self, symbol: str, rate: float) -> None:
        """Change one symbol's book updates per second from now on (0: silent)."""
        self.market.set_rate(symbol.upper(), rate, time.monotonic())

    def book(self, symbol: str) -> dict[str, str]:
        """The current best bid/ask of `symbol`, as REST `bookTicker` answers it."""
        return book_row(self.market.paths[symbol.upper()])

    def settings(self) -> dict[str, Any]:
        """vt_setting.json keys that point the Binance adapter at this simulator."""
        return {"binance.ws_url": self.ws_url, "binance.rest_url": self.rest_url}

    # --- faults (the same as `sim.faults.…`) ------------------------------------------------------

    def drop_all(self) -> int:
        return self.faults.drop_all()

    def refuse_upgrades(self, seconds: float) -> None:
        self.faults.refuse_upgrades(seconds)

    def stall(self, seconds: float) -> None:
        self.faults.stall(seconds)

    def silence(self, seconds: float, symbols: Iterable[str] | None = None) -> None:
        self.faults.silence(seconds, symbols)

    def malformed(self, count: int) -> int:
        return self.faults.malformed(count)

    def flap(self, seconds: float, up: float = 0.0) -> None:
        self.faults.flap(seconds, up)

    def slow_handshake(self, seconds: float, delay: float | None = None) -> None:
        self.faults.slow_handshake(seconds, delay)

    def refuse_subscriptions(self, seconds: float, symbols: Iterable[str]) -> None:
        self.faults.refuse_subscriptions(seconds, symbols)

    def reset_ids(self, symbol: str) -> None:
        self.faults.reset_ids(symbol)

    def jump_ids(self, symbol: str, by: int = 10**9) -> None:
        self.faults.jump_ids(symbol, by)

    def slow_rest(self, seconds: float, delay: float | None = None) -> None:
        self.faults.slow_rest(seconds, delay)

    def rest_errors(self, status: int, count: int, retry_after: float = 1.0) -> None:
        self.faults.rest_errors(status, count, retry_after)

    def cut_lifetime(self) -> int:
        return self.faults.cut_lifetime()

    def server_shutdown(self, grace: float | None = None) -> int:
        return self.faults.server_shutdown(grace)

    def outage(self, seconds: float) -> None:
        self.faults.outage(seconds)

    def clear(self) -> None:
        self.faults.clear()


async def start_simulator(symbols: Sequence[str], rate: float) -> Simulator:
    """Start a simulator for `symbols` at `rate` updates/s each (the demo's entry point)."""
    return await Simulator(SimulatorConfig(symbols=tuple(symbols), rate=rate)).start()
