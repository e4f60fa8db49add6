"""The vnpy gateway with the real vnpy `EventEngine`, against the simulator."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from vnpy.event import Event, EventEngine
from vnpy.trader.constant import Exchange
from vnpy.trader.event import EVENT_LOG, EVENT_TICK
from vnpy.trader.object import SubscribeRequest, TickData

from foxtrot_stream.contract.model import Tick, TransportKind
from foxtrot_stream.integrations.vnpy import FoxtrotStreamGateway, exchange_for, to_tick_data

from engine_helpers import SimulatorThread, wait_until

SUBSCRIBED = {"BTCUSDT", "ETHUSDT"}


class Events:
    """vnpy event handlers: every tick event with its arrival time, and the log lines."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ticks: list[tuple[float, str, TickData]] = []
        self.logs: list[str] = []

    def on_tick(self, event: Event) -> None:
        with self.lock:
            self.ticks.append((time.monotonic(), event.type, event.data))

    def on_log(self, event: Event) -> None:
        with self.lock:
            self.logs.append(event.data.msg)

    def of(self, event_type: str, since: float = 0.0) -> list[TickData]:
        with self.lock:
            return [t for at, kind, t in self.ticks if kind == event_type and at >= since]


@pytest.fixture
def vnpy_engine() -> Iterator[tuple[EventEngine, Events]]:
    event_engine = EventEngine(interval=1)
    events = Events()
    event_engine.register(EVENT_TICK, events.on_tick)
    event_engine.register(EVENT_TICK + "BTCUSDT.GLOBAL", events.on_tick)
    event_engine.register(EVENT_LOG, events.on_log)
    event_engine.start()
    yield event_engine, events
    event_engine.stop()


def test_ticks_arrive_as_etick_events_through_an_outage_and_stop_cleanly(
    settings_file: Path,
    simulator: SimulatorThread,
    vnpy_engine: tuple[EventEngine, Events],
) -> None:
    threads_before = set(threading.enumerate())
    event_engine, events = vnpy_engine
    gateway = FoxtrotStreamGateway(event_engine)
    gateway.connect({"settings_file": str(settings_file)})
    try:
        for symbol in sorted(SUBSCRIBED):
            gateway.subscribe(SubscribeRequest(symbol, Exchange.GLOBAL))
        wait_until(
            lambda: (
                {t.vt_symbol for t in events.of(EVENT_TICK)} == {"BTCUSDT.GLOBAL", "ETHUSDT.GLOBAL"}
            ),
            5,
            "eTick. events for both symbols",
        )
        assert events.of(EVENT_TICK + "BTCUSDT.GLOBAL"), "the per-symbol eTick.<vt_symbol>"
        first = events.of(EVENT_TICK)[0]
        assert first.gateway_name == "FOXTROT_STREAM" and first.exchange is Exchange.GLOBAL
        assert first.datetime.tzinfo is dt.UTC and first.bid_price_1 > 0 and first.ask_price_1 > 0

        def transports() -> set[str]:
            symbols = gateway.status()["adapters"]["binance"]["symbols"]
            return {info["transport"] for info in symbols.values()}

        wait_until(lambda: transports() == {"websocket"}, 5, "streaming over WebSocket")
        outage = 2.5
        began = time.monotonic()
        simulator.call(simulator.sim.outage, outage)
        wait_until(lambda: transports() == {"http"}, 3, "HTTP polling during the outage")
        polled_from = time.monotonic()
        wait_until(
            lambda: (
                {t.symbol for t in events.of(EVENT_TICK, polled_from)} == {"BTCUSDT", "ETHUSDT"}
            ),
            2,
            "eTick. events while the exchange's WebSocket is down",
        )
        assert time.monotonic() < began + outage, "the ticks above came during the outage"
        wait_until(lambda: transports() == {"websocket"}, 6, "WebSocket again after the outage")
        back = time.monotonic()
        wait_until(lambda: len(events.of(EVENT_TICK, back)) >= 10, 3, "ticks after recovery")
        assert {t.symbol for t in events.of(EVENT_TICK)} == SUBSCRIBED  # nothing else
    finally:
        gateway.close()
    received = len(events.of(EVENT_TICK))
    consumer_threads = [t for t in threading.enumerate() if t.name.startswith("foxtrot-stream")]
    assert consumer_threads == []
    event_engine.stop()  # (the fixture's stop then finds it stopped: vnpy joins twice, harmless)
    assert set(threading.enumerate()) <= threads_before
    assert received > 0


def test_refused_symbols_and_other_exchanges_are_logged_not_raised(
    settings_file: Path, vnpy_engine: tuple[EventEngine, Events]
) -> None:
    event_engine, events = vnpy_engine
    gateway = FoxtrotStreamGateway(event_engine, "FTS")
    gateway.subscribe(SubscribeRequest("BTCUSDT", Exchange.GLOBAL))  # before connect
    gateway.connect({"settings_file": str(settings_file), "policy": "drop_oldest"})
    try:
        gateway.subscribe(SubscribeRequest("NOSUCHCOIN", Exchange.GLOBAL))
        gateway.subscribe(SubscribeRequest("BTCUSDT", Exchange.SSE))
        gateway.subscribe(SubscribeRequest("btcusdt", Exchange.GLOBAL))
        wait_until(lambda: len(events.of(EVENT_TICK)) > 0, 5, "a tick")
        # the host's spelling is kept, so its vt_symbol matches what it subscribed
        assert {t.vt_symbol for t in events.of(EVENT_TICK)} == {"btcusdt.GLOBAL"}
        assert gateway.status()["consumers"][0]["policy"] == "drop_oldest"
    finally:
        gateway.close()
    wait_until(lambda: len(events.logs) >= 4, 3, "log events")
    text = "\n".join(events.logs)
    assert "subscribe BTCUSDT.GLOBAL: not connected" in text
    assert "NOSUCHCOIN.GLOBAL refused" in text
    assert "serves binance symbols on exchange GLOBAL" in text
    assert "connected: binance market data" in text


def test_order_and_account_methods_say_market_data_only() -> None:
    gateway = FoxtrotStreamGateway(EventEngine())
    for call in (
        lambda: gateway.send_order(None),
        lambda: gateway.cancel_order(None),
        lambda: gateway.send_quote(None),
        lambda: gateway.cancel_quote(None),
        gateway.query_account,
        gateway.query_position,
    ):
        with pytest.raises(NotImplementedError, match="market data only"):
            call()


def test_tick_conversion_times_and_exchange() -> None:
    assert exchange_for("binance") is Exchange.GLOBAL  # vnpy 4.5 has no Exchange.BINANCE
    streamed = Tick(
        "binance", "BTCUSDT", 100.0, 1.5, 100.5, 2.5, 100.2, 7, 3, 1_700_000_000_123,
        1_700_000_000_456_000_000, TransportKind.WEBSOCKET,
    )  # fmt: skip
    tick = to_tick_data(streamed, "GW")
    assert tick.vt_symbol == "BTCUSDT.GLOBAL" and tick.gateway_name == "GW"
    assert tick.datetime == dt.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=dt.UTC)
    assert tick.localtime == dt.datetime(2023, 11, 14, 22, 13, 20, 456000, tzinfo=dt.UTC)
    assert (tick.bid_price_1, tick.bid_volume_1, tick.ask_price_1, tick.ask_volume_1) == (
        100.0, 1.5, 100.5, 2.5,
    )  # fmt: skip
    assert tick.last_price == 100.2
    polled = Tick(
        "binance", "BTCUSDT", 1.0, 1.0, 2.0, 1.0, None, None, None, None,
        1_700_000_000_456_000_000, TransportKind.HTTP,
    )  # fmt: skip
    tick = to_tick_data(polled, "GW")
    assert tick.datetime == tick.localtime and tick.last_price == 0.0


def test_without_vnpy_the_import_error_says_which_extra_to_install() -> None:
    code = (
        "import sys; sys.modules['vnpy'] = None\n"
        "try:\n"
        "    import foxtrot_stream.integrations.vnpy\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert 'pip install "foxtrot-stream[vnpy]"' in out


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("maxsize", "abc", "maxsize = 'abc': expected an integer of at least 1"),
        ("maxsize", 0, "maxsize = 0: expected an integer of at least 1"),
        ("maxsize", 2.5, "maxsize = 2.5: expected an integer of at least 1"),
        ("timeout", "soon", "timeout = 'soon': expected a number of seconds above 0"),
        ("timeout", 0, "timeout = 0: expected a number of seconds above 0"),
        ("policy", "newest", "policy = 'newest': expected one of conflate, drop_oldest"),
    ],
)
def test_a_bad_connect_setting_names_the_key_the_value_and_what_was_expected(
    settings_file: Path,
    vnpy_engine: tuple[EventEngine, Events],
    key: str,
    value: object,
    expected: str,
) -> None:
    gateway = FoxtrotStreamGateway(vnpy_engine[0], "FTS")
    with pytest.raises(ValueError, match=re.escape(expected)):
        gateway.connect({"settings_file": str(settings_file), key: value})
    assert gateway.engine is None  # nothing started


def test_numeric_text_from_the_connect_dialog_is_accepted(
    settings_file: Path, vnpy_engine: tuple[EventEngine, Events]
) -> None:
    gateway = FoxtrotStreamGateway(vnpy_engine[0], "FTS")
    gateway.connect({"settings_file": str(settings_file), "maxsize": "50", "timeout": "2.5"})
    try:
        assert gateway.status()["consumers"][0]["maxsize"] == 50
        assert gateway.timeout == 2.5
    finally:
        gateway.close()
