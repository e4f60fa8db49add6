"""`FoxtrotStreamGateway` in vnpy 4.5's own `MainEngine`, started as vnpy starts, against the
bundled simulator: settings from the trader folder, contracts, ticks, logs, failover, close."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from foxtrot_stream.config.settings import SettingsError

from engine_helpers import SimulatorThread, wait_until
from host_helpers import Events, host_setting_file, make_trader_folder, missing_imports, unavailable

GATEWAY = "FOXTROT_STREAM"
SUBSCRIBED = {"BTCUSDT", "ETHUSDT"}


@pytest.fixture(scope="session")
def vn(host_simulator: SimulatorThread, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """vnpy's modules, imported from a trader folder whose vt_setting.json holds the guide's
    keys (pointing at the simulator): vnpy loads it into SETTINGS itself."""
    missing = missing_imports() + (["vnpy"] if importlib.util.find_spec("vnpy") is None else [])
    if missing:
        unavailable(f"vnpy's MainEngine needs {', '.join(missing)} (`uv sync`: group dev)")
    trader = make_trader_folder(tmp_path_factory.mktemp("vnpy-trader"), host_simulator)
    fresh = "vnpy.trader.utility" not in sys.modules
    cwd = os.getcwd()
    os.chdir(trader)  # where vnpy looks for .vntrader
    try:
        from vnpy.event import EventEngine
        from vnpy.trader import event as vnpy_event
        from vnpy.trader import utility
        from vnpy.trader.constant import Exchange, Product
        from vnpy.trader.engine import MainEngine
        from vnpy.trader.object import ContractData, LogData, SubscribeRequest, TickData
        from vnpy.trader.setting import SETTINGS

        from foxtrot_stream.integrations.vnpy import FoxtrotStreamGateway
    finally:
        os.chdir(cwd)
    return SimpleNamespace(
        fresh=fresh and Path(utility.TRADER_DIR) == trader,
        trader=trader,
        utility=utility,
        EventEngine=EventEngine,
        MainEngine=MainEngine,
        ev=vnpy_event,
        Exchange=Exchange,
        Product=Product,
        ContractData=ContractData,
        LogData=LogData,
        SubscribeRequest=SubscribeRequest,
        TickData=TickData,
        SETTINGS=SETTINGS,
        Gateway=FoxtrotStreamGateway,
        file=host_setting_file(host_simulator),
    )


@pytest.fixture
def vnpy_main(vn: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Events]]:
    """vnpy's MainEngine as vnpy starts it, with a recorder of its events."""
    if not vn.fresh:  # vnpy was imported earlier from elsewhere: as if it had loaded ours
        for key, value in vn.file.items():
            monkeypatch.setitem(vn.SETTINGS, key, value)
        monkeypatch.setattr(vn.utility, "TEMP_DIR", vn.trader / ".vntrader")
    monkeypatch.chdir(vn.trader)  # MainEngine changes directory to its trader folder
    main_engine = vn.MainEngine(vn.EventEngine())
    events = Events()
    for kind in (vn.ev.EVENT_TICK, vn.ev.EVENT_LOG, vn.ev.EVENT_CONTRACT):
        main_engine.event_engine.register(kind, events)
    yield main_engine, events
    main_engine.close()


def our_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("foxtrot-stream")]


def transports(gateway: Any) -> set[str]:
    symbols = gateway.status()["adapters"]["binance"]["symbols"]
    return {info["transport"] for info in symbols.values()}


def test_vnpy_main_engine_streams_with_contracts_logs_failover_and_closes_clean(
    vn: Any, vnpy_main: tuple[Any, Events], host_simulator: SimulatorThread
) -> None:
    main_engine, events = vnpy_main
    threads_before = set(threading.enumerate())
    assert vn.SETTINGS["binance.rest_url"] == host_simulator.sim.rest_url  # vnpy's own SETTINGS

    gateway = main_engine.add_gateway(vn.Gateway)
    main_engine.connect({}, GATEWAY)
    wait_until(
        lambda: main_engine.get_contract("BTCUSDT.GLOBAL") is not None, 5, "contracts published"
    )
    contract = main_engine.get_contract("BTCUSDT.GLOBAL")
    assert isinstance(contract, vn.ContractData) and contract.gateway_name == GATEWAY
    assert contract.product is vn.Product.SPOT and contract.size == 1
    assert contract.min_volume == pytest.approx(0.0001) and contract.pricetick > 0

    for symbol in sorted(SUBSCRIBED):  # one call at a time
        main_engine.subscribe(vn.SubscribeRequest(symbol, vn.Exchange.GLOBAL), GATEWAY)
    wait_until(
        lambda: {t.symbol for t in events.of(vn.ev.EVENT_TICK)} == SUBSCRIBED, 5, "eTick. events"
    )
    tick = events.of(vn.ev.EVENT_TICK)[0]
    assert isinstance(tick, vn.TickData) and tick.exchange is vn.Exchange.GLOBAL
    assert tick.gateway_name == GATEWAY

    wait_until(lambda: transports(gateway) == {"websocket"}, 5, "streaming over WebSocket")
    host_simulator.call(host_simulator.sim.outage, 2.5)
    wait_until(lambda: transports(gateway) == {"http"}, 3, "HTTP polling during the outage")
    wait_until(lambda: transports(gateway) == {"websocket"}, 6, "WebSocket again after the outage")
    wait_until(lambda: "circuit breaker CLOSED" in events.log_text(), 3, "the breaker closing")
    back = time.monotonic()
    wait_until(lambda: len(events.of(vn.ev.EVENT_TICK, back)) >= 10, 3, "ticks after recovery")
    text = events.log_text()
    for line in (
        "connected: binance market data",
        "WebSocket connection established",
        "circuit breaker OPEN",
        "HTTP polling for",
        "contracts on exchange GLOBAL",
    ):
        assert line in text, line
    assert all(isinstance(log, vn.LogData) for log in events.logs())
    error = next(log for log in events.logs() if "circuit breaker OPEN" in log.msg)
    assert error.level == logging.WARNING

    main_engine.close()
    assert our_threads() == []
    assert set(threading.enumerate()) <= threads_before


def test_a_relative_settings_file_is_read_from_the_trader_folder_and_a_bad_one_logged(
    vn: Any, vnpy_main: tuple[Any, Events]
) -> None:
    main_engine, events = vnpy_main
    folder = Path(vn.utility.TEMP_DIR)
    gateway = main_engine.add_gateway(vn.Gateway)
    (folder / "broken.json").write_text('{"websocket.enabled": "yes"}', encoding="utf-8")
    with pytest.raises(SettingsError, match=r"websocket\.enabled"):
        main_engine.connect({"settings_file": "broken.json"}, GATEWAY)
    wait_until(lambda: "not connected" in events.log_text(), 3, "the error in vnpy's log")
    ours = [log for log in events.logs() if log.gateway_name == GATEWAY]
    assert ours[0].level == logging.ERROR and "line 1: websocket.enabled" in ours[0].msg
    assert gateway.engine is None and our_threads() == []

    (folder / "stream.json").write_text(json.dumps({"http_fallback.interval": 0.5}), "utf-8")
    main_engine.connect({"settings_file": "stream.json"}, GATEWAY)
    assert gateway.engine.settings.plugin("http_fallback").interval == 0.5
    assert gateway.engine.settings.websocket.enabled is True  # from vnpy's SETTINGS
    gateway.close()
    assert our_threads() == []
