"""`FoxtrotStreamAdapter` in Foxtrot's own `MainEngine`, started as Foxtrot starts, against the
bundled simulator: settings from the trader folder, contracts, ticks, logs, failover, close."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from foxtrot_stream.config.settings import SettingsError
from foxtrot_stream_binance.simulator.prices import fmt

from engine_helpers import SimulatorThread, wait_until
from host_helpers import (
    FOXTROT_HOST,
    Events,
    host_setting_file,
    make_trader_folder,
    missing_imports,
    unavailable,
)

ADAPTER = "FOXTROT_STREAM"
SUBSCRIBED = {"BTCUSDT", "SOLUSDT"}


@pytest.fixture(scope="session")
def fx(host_simulator: SimulatorThread, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Foxtrot's modules, imported from a trader folder whose vt_setting.json holds the guide's
    keys (pointing at the simulator): Foxtrot loads it into SETTINGS itself."""
    if not (FOXTROT_HOST / "foxtrot" / "server" / "engine.py").is_file():
        unavailable(f"no Foxtrot host at {FOXTROT_HOST} (set FOXTROT_HOST_PATH to its folder)")
    missing = missing_imports()
    if missing:
        unavailable(f"Foxtrot's modules need {', '.join(missing)} (`uv sync`: group foxtrot-host)")
    trader = make_trader_folder(tmp_path_factory.mktemp("foxtrot-trader"), host_simulator)
    if str(FOXTROT_HOST) not in sys.path:
        sys.path.insert(0, str(FOXTROT_HOST))
    cwd = os.getcwd()
    os.chdir(trader)  # where Foxtrot looks for .vntrader (and writes its log folders)
    try:
        from foxtrot.core.event_engine import EventEngine
        from foxtrot.server.engine import MainEngine
        from foxtrot.util import event_type, utility
        from foxtrot.util.constants import Exchange, Product
        from foxtrot.util.object import ContractData, LogData, SubscribeRequest, TickData
        from foxtrot.util.settings import SETTINGS

        from foxtrot_stream.integrations.foxtrot import FoxtrotStreamAdapter
    finally:
        os.chdir(cwd)
    if Path(utility.TRADER_DIR) != trader:  # imported earlier from elsewhere: as if loaded here
        SETTINGS.update(host_setting_file(host_simulator))
    return SimpleNamespace(
        trader=Path(utility.TRADER_DIR),
        folder=Path(utility.TEMP_DIR),
        EventEngine=EventEngine,
        MainEngine=MainEngine,
        ev=event_type,
        Exchange=Exchange,
        Product=Product,
        ContractData=ContractData,
        LogData=LogData,
        SubscribeRequest=SubscribeRequest,
        TickData=TickData,
        SETTINGS=SETTINGS,
        Adapter=FoxtrotStreamAdapter,
    )


@pytest.fixture
def foxtrot_main(fx: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Events]]:
    """Foxtrot's MainEngine as Foxtrot starts it, with a recorder of its events."""
    monkeypatch.chdir(fx.trader)  # MainEngine changes directory to its trader folder
    main_engine = fx.MainEngine(fx.EventEngine())
    events = Events()
    for kind in (fx.ev.EVENT_TICK, fx.ev.EVENT_TICK + "BTCUSDT.BINANCE", fx.ev.EVENT_LOG):
        main_engine.event_engine.register(kind, events)
    main_engine.event_engine.register(fx.ev.EVENT_CONTRACT, events)
    yield main_engine, events
    main_engine.close()


def our_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("foxtrot-stream")]


def our_log_handlers() -> list[str]:
    names = ("BinanceAdapter", "BinanceAdapterWebSocket", "BinanceAdapterError", "foxtrot_stream")
    return [
        f"{name}: {h!r}"
        for name in names
        for h in logging.getLogger(name).handlers
        if type(h).__module__.startswith("foxtrot_stream")
    ]


def transports(adapter: Any) -> set[str]:
    symbols = adapter.status()["adapters"]["binance"]["symbols"]
    return {info["transport"] for info in symbols.values()}


def test_foxtrot_main_engine_streams_ticks_with_contracts_and_logs_and_closes_clean(
    fx: Any, foxtrot_main: tuple[Any, Events], host_simulator: SimulatorThread
) -> None:
    main_engine, events = foxtrot_main
    threads_before = set(threading.enumerate())
    # the settings are Foxtrot's own, read from its trader folder
    assert fx.SETTINGS["binance.rest_url"] == host_simulator.sim.rest_url
    assert fx.SETTINGS["websocket.enabled"] is True

    adapter = main_engine.add_adapter(fx.Adapter)
    assert fx.Exchange.BINANCE in main_engine.get_all_exchanges()
    main_engine.connect({}, ADAPTER)
    wait_until(
        lambda: main_engine.get_contract("ETHUSDT.BINANCE") is not None, 5, "contracts published"
    )
    contract = main_engine.get_contract("BTCUSDT.BINANCE")
    assert isinstance(contract, fx.ContractData) and contract.adapter_name == ADAPTER
    assert contract.exchange is fx.Exchange.BINANCE and contract.product is fx.Product.SPOT
    assert contract.size == 1 and contract.min_volume == pytest.approx(0.0001)
    assert contract.pricetick == float(fmt(host_simulator.sim.paths["BTCUSDT"].tick))
    assert {c.symbol for c in events.of(fx.ev.EVENT_CONTRACT)} == set(host_simulator.sim.paths)

    for symbol in ("BTCUSDT", "ETHUSDT"):  # one call at a time, as a user or an app does
        main_engine.subscribe(fx.SubscribeRequest(symbol, fx.Exchange.BINANCE), ADAPTER)
    wait_until(
        lambda: (
            {t.vt_symbol for t in events.of(fx.ev.EVENT_TICK)}
            == {"BTCUSDT.BINANCE", "ETHUSDT.BINANCE"}
        ),
        5,
        "eTick. events for both symbols",
    )
    tick = events.of(fx.ev.EVENT_TICK + "BTCUSDT.BINANCE")[0]
    assert isinstance(tick, fx.TickData) and tick.adapter_name == ADAPTER
    assert tick.exchange is fx.Exchange.BINANCE and tick.bid_price_1 > 0 < tick.ask_price_1
    assert main_engine.get_tick("ETHUSDT.BINANCE") is not None  # Foxtrot's OMS has it
    wait_until(lambda: transports(adapter) == {"websocket"}, 5, "streaming over WebSocket")

    wait_until(lambda: "WebSocket connection established" in events.log_text(), 3, "log lines")
    logs = events.logs()
    assert all(isinstance(log, fx.LogData) and log.adapter_name == ADAPTER for log in logs)
    text = events.log_text()
    assert "connected: market data through foxtrot-stream for binance (BINANCE)" in text
    assert "contracts on exchange BINANCE" in text
    assert len(logs) < 30, "no per-tick log lines"

    main_engine.close()  # stops Foxtrot's event engine, then closes every adapter
    assert our_threads() == []
    assert set(threading.enumerate()) <= threads_before
    assert our_log_handlers() == []
    assert logging.getLogger("BinanceAdapter").level == logging.NOTSET  # as it was
    assert adapter.engine is None


def test_breaker_failover_and_recovery_reach_foxtrot(
    fx: Any, foxtrot_main: tuple[Any, Events], host_simulator: SimulatorThread
) -> None:
    main_engine, events = foxtrot_main
    adapter = main_engine.add_adapter(fx.Adapter)
    main_engine.connect({}, ADAPTER)
    for symbol in sorted(SUBSCRIBED):
        main_engine.subscribe(fx.SubscribeRequest(symbol, fx.Exchange.BINANCE), ADAPTER)
    wait_until(lambda: transports(adapter) == {"websocket"}, 5, "streaming over WebSocket")
    outage = 2.5
    began = time.monotonic()
    host_simulator.call(host_simulator.sim.outage, outage)
    wait_until(lambda: "circuit breaker OPEN" in events.log_text(), 3, "the breaker opening")
    wait_until(lambda: transports(adapter) == {"http"}, 3, "HTTP polling during the outage")
    polled_from = time.monotonic()
    wait_until(
        lambda: (
            {t.symbol for t in events.of(fx.ev.EVENT_TICK, polled_from)} == {"BTCUSDT", "SOLUSDT"}
        ),
        2,
        "Foxtrot ticks while the exchange's WebSocket is down",
    )
    assert time.monotonic() < began + outage, "the ticks above came during the outage"
    wait_until(lambda: transports(adapter) == {"websocket"}, 6, "WebSocket again after the outage")
    wait_until(lambda: "circuit breaker CLOSED" in events.log_text(), 3, "the breaker closing")
    levels = {log.msg.split(":")[0]: log.level for log in events.logs()}
    assert levels["BinanceAdapterError"] == logging.WARNING  # the breaker's warning, as such
    text = events.log_text()
    assert "HTTP polling for" in text
    back = time.monotonic()
    wait_until(lambda: len(events.of(fx.ev.EVENT_TICK, back)) >= 10, 3, "ticks after recovery")


def test_settings_file_is_read_from_the_trader_folder_and_a_missing_one_is_a_host_error(
    fx: Any, foxtrot_main: tuple[Any, Events]
) -> None:
    main_engine, events = foxtrot_main
    adapter = main_engine.add_adapter(fx.Adapter)
    with pytest.raises(SettingsError, match="no settings file"):
        main_engine.connect({"settings_file": "no-such-file.json"}, ADAPTER)
    wait_until(lambda: len(events.logs()) >= 2, 3, "the error in Foxtrot's log")
    error = events.logs()[0]
    assert error.level == logging.ERROR
    assert str(fx.folder / "no-such-file.json") in error.msg  # resolved in the trader folder
    assert "settings_file: no settings file at" in error.msg and "trader folder" in error.msg
    assert "not connected" in events.log_text()
    assert adapter.engine is None and our_threads() == [] and our_log_handlers() == []

    # a file of our own keys beside vt_setting.json; the connect dialog's keys come last
    (fx.folder / "stream.json").write_text(
        json.dumps({"http_fallback.interval": 0.5, "websocket.heartbeat.interval": 0.5}),
        encoding="utf-8",
    )
    main_engine.connect(
        {"settings_file": "stream.json", "websocket.heartbeat.interval": 0.4}, ADAPTER
    )
    settings = adapter.engine.settings
    assert settings.plugin("http_fallback").interval == 0.5  # the file
    assert settings.websocket.heartbeat.interval == 0.4  # the dialog
    assert settings.plugin("binance").rest_url == fx.SETTINGS["binance.rest_url"]  # the host
    adapter.close()
    assert our_threads() == []


def test_requests_it_cannot_serve_get_foxtrots_answers_and_one_log_line_each(
    fx: Any, foxtrot_main: tuple[Any, Events]
) -> None:
    main_engine, events = foxtrot_main
    adapter = main_engine.add_adapter(fx.Adapter)
    main_engine.subscribe(fx.SubscribeRequest("BTCUSDT", fx.Exchange.BINANCE), ADAPTER)
    for _ in range(2):
        assert main_engine.send_order(None, ADAPTER) == ""
        assert main_engine.send_quote(None, ADAPTER) == ""
        assert main_engine.query_history(None, ADAPTER) == []
        assert main_engine.cancel_order(None, ADAPTER) is None
        assert adapter.query_account() is None and adapter.query_position() is None
    main_engine.connect({}, ADAPTER)
    main_engine.subscribe(fx.SubscribeRequest("NOSUCHCOIN", fx.Exchange.BINANCE), ADAPTER)
    main_engine.subscribe(fx.SubscribeRequest("BTCUSDT", fx.Exchange.SSE), ADAPTER)
    wait_until(lambda: "NOSUCHCOIN.BINANCE refused" in events.log_text(), 5, "the refusal")
    adapter.close()
    text = events.log_text()
    assert "subscribe BTCUSDT.BINANCE: not connected" in text
    assert "subscribe BTCUSDT.SSE: this adapter serves BINANCE, OKX only" in text
    for what in ("orders", "quotes", "history queries", "order cancels", "account queries"):
        assert text.count(f"market data only: {what} not done") == 1, what


def test_each_plugin_names_its_foxtrot_exchange_else_the_adapters_name_else_global(
    fx: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from foxtrot_stream.contract.records import AdapterSpec
    from foxtrot_stream.integrations.foxtrot import exchange_for

    def spec(name: str, **host_exchanges: str) -> AdapterSpec:
        return AdapterSpec(name, "X", None, lambda _: None, host_exchanges=host_exchanges)

    assert exchange_for(spec("binance", foxtrot="BINANCE")) is fx.Exchange.BINANCE
    assert exchange_for(spec("binance_usdm", foxtrot="BINANCEUSDM")) is fx.Exchange.BINANCEUSDM
    assert exchange_for(spec("okx")) is fx.Exchange.OKX
    assert exchange_for(spec("okx", foxtrot="NOT_IN_FOXTROT")) is fx.Exchange.OKX
    assert exchange_for(spec("somewhere")) is fx.Exchange.GLOBAL
    monkeypatch.chdir(fx.trader)  # Foxtrot's EventEngine writes log folders where it starts
    adapter = fx.Adapter(fx.EventEngine(), "FTS")
    # the installed plugins' (the bundled binance and okx)
    assert adapter.exchanges == [fx.Exchange.BINANCE, fx.Exchange.OKX]
    assert adapter.adapter_of == {fx.Exchange.BINANCE: "binance", fx.Exchange.OKX: "okx"}


def test_outside_foxtrot_the_import_error_says_so() -> None:
    code = (
        "import sys; sys.modules['foxtrot'] = None\n"
        "try:\n"
        "    import foxtrot_stream.integrations.foxtrot\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "runs inside the Foxtrot platform" in out


def test_one_gateway_serves_binance_and_okx_side_by_side(
    fx: Any, foxtrot_main: tuple[Any, Events]
) -> None:
    """With the OKX plugin installed, the gateway serves Exchange.OKX too: a subscription on
    each exchange streams from its own adapter (OKX's simulator in a thread of its own), and
    the ticks carry OKX's spelling of the symbol."""
    import asyncio

    from foxtrot_stream_okx.simulator import OkxSimulator

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-okx-simulator", daemon=True)
    thread.start()
    okx = asyncio.run_coroutine_threadsafe(OkxSimulator(("BTC-USDT",)).start(), loop).result(10)
    main_engine, events = foxtrot_main
    try:
        main_engine.add_adapter(fx.Adapter)
        main_engine.connect(okx.settings(), ADAPTER)  # the dialog's dotted keys
        main_engine.subscribe(fx.SubscribeRequest("BTCUSDT", fx.Exchange.BINANCE), ADAPTER)
        main_engine.subscribe(fx.SubscribeRequest("BTC-USDT", fx.Exchange.OKX), ADAPTER)

        def seen() -> set[str]:
            return {tick.vt_symbol for tick in events.of(fx.ev.EVENT_TICK)}

        wait_until(lambda: {"BTCUSDT.BINANCE", "BTC-USDT.OKX"} <= seen(), 15, "both exchanges")
        okx_tick = next(t for t in events.of(fx.ev.EVENT_TICK) if t.vt_symbol == "BTC-USDT.OKX")
        assert okx_tick.exchange is fx.Exchange.OKX and okx_tick.bid_price_1 > 0
    finally:
        main_engine.close()
        asyncio.run_coroutine_threadsafe(okx.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_foxtrot_reads_ticks_and_contracts_from_redis_that_a_feed_process_publishes(
    fx: Any,
    foxtrot_main: tuple[Any, Events],
    host_simulator: SimulatorThread,
    redis_server: Any,
    tmp_path: Path,
) -> None:
    """The scale-out deployment end to end: the simulator → a `foxtrot-stream run --sink`
    process → Redis → Foxtrot's own MainEngine (`redis.consume` from the connect dialog), which
    reads from Redis instead of the exchange and gets the contracts and every tick, in order."""
    main_engine, events = foxtrot_main
    settings = tmp_path / "feed.json"
    settings.write_text(json.dumps(host_setting_file(host_simulator)), encoding="utf-8")
    published = tmp_path / "published.jsonl"
    with published.open("wb") as out:
        feed = subprocess.Popen(
            [sys.executable, "-m", "foxtrot_stream", "run", "--config", str(settings),
             "--symbols", "BTCUSDT", "ETHUSDT", "--sink", redis_server.url, "--format", "jsonl"],
            stdout=out, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            main_engine.add_adapter(fx.Adapter)
            dialog = {"redis.consume": True, "redis.url": redis_server.url,
                      "redis.start": "oldest", "redis.block": 0.05}  # fmt: skip
            main_engine.connect(dialog, ADAPTER)
            wait_until(lambda: main_engine.get_contract("BTCUSDT.BINANCE") is not None, 10,
                       "contracts from Redis")  # fmt: skip
            for symbol in ("BTCUSDT", "ETHUSDT"):
                main_engine.subscribe(fx.SubscribeRequest(symbol, fx.Exchange.BINANCE), ADAPTER)
            wait_until(lambda: len(events.of(fx.ev.EVENT_TICK + "BTCUSDT.BINANCE")) >= 30, 10,
                       "30 BTCUSDT ticks through Redis")  # fmt: skip
        finally:
            feed.terminate()  # SIGTERM: the feed stops, its sink flushes
            feed.wait(10)
    lines = [json.loads(line) for line in published.read_text().splitlines()]
    want = [(t["bid"], t["ask"]) for t in lines if t["symbol"] == "BTCUSDT"]
    wait_until(lambda: len(events.of(fx.ev.EVENT_TICK + "BTCUSDT.BINANCE")) >= len(want), 5,
               "every published tick")  # fmt: skip
    status = main_engine.get_adapter(ADAPTER).status()
    main_engine.close()
    got = [(t.bid_price_1, t.ask_price_1) for t in events.of(fx.ev.EVENT_TICK + "BTCUSDT.BINANCE")]
    assert feed.returncode == 0
    assert got == want  # every tick the feed delivered, once, in its order
    contract = main_engine.get_contract("ETHUSDT.BINANCE")
    assert contract is not None and contract.pricetick > 0
    source = status["adapters"]["binance"]["source"]
    assert source["errors"] == 0 and source["read"] == len(lines)
