"""The one loop that moves the market and publishes it.

Each due update is encoded once, and only if someone is subscribed to its stream; the frame
bytes are shared by every subscriber's outbox. Paths advance during `stall` and `silence`
too, so REST answers keep moving while the streams are quiet, as on the exchange.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

from foxtrot_stream_binance.simulator import streams
from foxtrot_stream_binance.simulator.faults import ALL, Faults
from foxtrot_stream_binance.simulator.market import Market
from foxtrot_stream_binance.simulator.ws import StreamServer

IDLE = 0.05
"""Longest sleep, so a rate change or a new depth subscription is picked up promptly."""


class Publisher:
    def __init__(
        self,
        market: Market,
        server: StreamServer,
        faults: Faults,
        tick: float,
        clock: Callable[[], float] = time.monotonic,
        now_us: Callable[[], int] = lambda: time.time_ns() // 1000,
    ) -> None:
        self.now_us = now_us
        self.market, self.server, self.faults = market, server, faults
        self.tick = tick
        self.clock = clock
        self._depth_due: dict[str, float] = {}

    async def run(self) -> None:
        while True:
            self.publish_due(self.clock())
            due = min(self.market.next_due(), min(self._depth_due.values(), default=math.inf))
            await asyncio.sleep(min(max(due - self.clock(), self.tick), IDLE))

    def publish_due(self, now: float) -> None:
        now_us = self.now_us()
        stalled = self.faults.stalled(now)
        silenced = self.faults.silenced(now)
        index = self.server.subscribers
        fan_out = self.server.fan_out
        jumps = self.faults.id_jumps
        for path, traded in self.market.advance(now, now_us):
            if stalled or (silenced is not None and (silenced is ALL or path.symbol in silenced)):
                continue
            book, trade, agg = path.streams
            subs = index.get(book)
            if subs:
                # a pending jump is spent on a frame someone gets, not on an unheard update
                jump = self.faults.take_jump(path.symbol) if jumps else 0
                fan_out(subs, book, streams.book_ticker(path, jump))
            if not traded:
                continue
            subs = index.get(trade)
            if subs:
                micro = streams.trade(path, True) if self.server.wants_micro(subs) else None
                fan_out(subs, trade, streams.trade(path), micro)
            subs = index.get(agg)
            if subs:
                micro = streams.agg_trade(path, True) if self.server.wants_micro(subs) else None
                fan_out(subs, agg, streams.agg_trade(path), micro)
        self._publish_depth(now, stalled, silenced)

    def _publish_depth(self, now: float, stalled: bool, silenced: frozenset[str] | None) -> None:
        active = self.server.depth_streams
        for name in [n for n in self._depth_due if n not in active]:
            del self._depth_due[name]
        for name, spec in active.items():
            due = self._depth_due.get(name, now)  # a new subscriber gets a snapshot at once
            if due > now:
                continue
            following = due + spec.period
            self._depth_due[name] = following if following > now else now + spec.period
            if stalled or (silenced is not None and (silenced is ALL or spec.symbol in silenced)):
                continue
            subs = self.server.subscribers.get(name)
            if subs:
                path = self.market.paths[spec.symbol]
                self.server.fan_out(subs, name, streams.depth(path, spec.levels))
