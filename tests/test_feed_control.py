"""A (un)subscribe that cannot be sent on a live connection is logged and counted, not raised."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

import pytest

from foxtrot_stream.config.settings import load
from foxtrot_stream.contract.plugins import PluginHost
from foxtrot_stream.policy.backoff import Backoff
from foxtrot_stream.policy.breaker import CircuitBreaker
from foxtrot_stream.runtime.feed import Feed
from foxtrot_stream.runtime.supervisor import ShardSupervisor


async def test_a_failed_control_send_is_logged_counted_and_reported(
    host: PluginHost, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load(text=json.dumps({"websocket.enabled": True}), schema=host.schema()).settings
    feed = Feed(host, settings, "binance")
    shard = ShardSupervisor(
        1,
        ["BTCUSDT", "ETHUSDT", "BNBUSDT"],
        feed,
        backoff=Backoff(1.0, 60.0, 50),
        breaker=CircuitBreaker(5, 60.0, feed.clock),
        heartbeat=30.0,
        recovery_timeout=60.0,
        max_lifetime=86400.0,
        display="BinanceAdapter",
        clock=feed.clock,
    )
    sent: list[Sequence[str]] = []

    async def broken(symbols: Sequence[str]) -> None:
        raise ConnectionResetError("the socket is gone")

    async def working(symbols: Sequence[str]) -> None:
        sent.append(symbols)

    caplog.set_level(logging.WARNING)
    assert await shard._control(broken, "subscribe", ["BTCUSDT", "ETHUSDT"]) is False
    assert await shard._control(working, "subscribe", ["BNBUSDT"]) is True
    assert sent == [["BNBUSDT"]]
    assert feed.counters.control_errors == 1
    assert [r.getMessage() for r in caplog.records] == [
        "could not subscribe BTCUSDT, ETHUSDT on a live connection "
        "(ConnectionResetError: the socket is gone); its reconnect will"
    ]
    assert caplog.records[0].name == "BinanceAdapterError"
