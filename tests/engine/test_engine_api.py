"""StreamEngine's thread-safe API against the real simulator: lifecycle, errors, status."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from foxtrot_stream import StreamEngine
from foxtrot_stream.config.settings import SettingsError
from foxtrot_stream.contract.model import Tick
from foxtrot_stream.integrations.engine import LOOP_THREAD
from foxtrot_stream.surfaces.serve import ServeAddressError

from engine_helpers import FAST, Collector, SimulatorThread, wait_until, write_settings


def test_ticks_reach_a_consumer_on_its_own_thread_and_status_is_plain_data(
    settings_file: Path,
) -> None:
    engine = StreamEngine.from_settings(settings_file)
    ticks = Collector()
    engine.add_consumer(ticks, name="collector")
    engine.start()
    try:
        loop_thread = next(t for t in threading.enumerate() if t.name == LOOP_THREAD)
        assert not loop_thread.daemon
        assert engine.subscribe(["btcusdt", "ETHUSDT"], "binance") == {}
        wait_until(lambda: ticks.symbols() == {"BTCUSDT", "ETHUSDT"}, 5, "both symbols")
        status = engine.status()
        assert json.loads(json.dumps(status)) == status
        assert status["running"] is True
        feed = status["adapters"]["binance"]
        assert set(feed["symbols"]) == {"BTCUSDT", "ETHUSDT"}
        [consumer] = status["consumers"]
        assert consumer["name"] == "collector" and consumer["policy"] == "conflate"
        assert consumer["received"] == (
            consumer["delivered"] + consumer["dropped"] + consumer["queued"]
        )
    finally:
        assert engine.stop(5)
    assert ticks.threads == {"foxtrot-stream-consumer-collector"}
    assert not loop_thread.is_alive()
    with pytest.raises(RuntimeError, match="not running"):
        engine.status()


def test_lifecycle_start_twice_stop_idempotent_and_calls_after_stop_raise(
    settings_file: Path,
) -> None:
    engine = StreamEngine.from_settings(settings_file)
    with pytest.raises(RuntimeError, match="not running"):
        engine.subscribe("BTCUSDT")  # before start
    engine.start()
    with pytest.raises(RuntimeError, match="cannot start"):
        engine.start()
    assert engine.stop(5)
    assert engine.stop(5)  # idempotent
    with pytest.raises(RuntimeError, match="not running"):
        engine.subscribe("BTCUSDT")
    with pytest.raises(RuntimeError, match="not running"):
        engine.reset_breaker()
    with pytest.raises(RuntimeError, match="stopped"):
        engine.add_consumer(print)
    with pytest.raises(RuntimeError, match="cannot start"):
        engine.start()
    never_started = StreamEngine.from_settings(settings_file)
    assert never_started.stop(1)


def test_concurrent_stop_calls_all_return_after_the_engine_stopped(settings_file: Path) -> None:
    engine = StreamEngine.from_settings(settings_file)
    engine.start()
    engine.subscribe("BTCUSDT")
    results: list[bool] = []
    threads = [threading.Thread(target=lambda: results.append(engine.stop(5))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [True] * 4
    assert not any(t.name == LOOP_THREAD for t in threading.enumerate())


def test_refused_symbols_are_returned_and_an_unknown_adapter_raises(settings_file: Path) -> None:
    engine = StreamEngine.from_settings(settings_file)
    engine.start()
    try:
        refused = engine.subscribe(["BTCUSDT", "NOSUCHCOIN"])
        assert list(refused) == ["NOSUCHCOIN"] and "not listed" in refused["NOSUCHCOIN"]
        with pytest.raises(LookupError, match=r"no adapter named 'kraken'.*installed: binance"):
            engine.subscribe("BTCUSDT", "kraken")
        assert list(engine.status()["adapters"]["binance"]["symbols"]) == ["BTCUSDT"]
    finally:
        assert engine.stop(5)


def test_a_bad_settings_file_names_key_value_and_expectation(tmp_path: Path) -> None:
    path = tmp_path / "vt_setting.json"
    path.write_text(
        json.dumps(FAST | {"websocket.enabled": "yes", "websocket.heartbeat.interval": -1}),
        encoding="utf-8",
    )
    with pytest.raises(SettingsError) as info:
        StreamEngine.from_settings(path)
    text = str(info.value)
    assert 'websocket.enabled = "yes": expected true or false' in text
    assert "websocket.heartbeat.interval = -1: expected a number greater than 0" in text


def test_stop_delivers_what_was_received_before_threads_end(settings_file: Path) -> None:
    engine = StreamEngine.from_settings(settings_file)
    gate = threading.Event()
    seen = Collector()

    def slow(tick: Tick) -> None:
        gate.wait(5)
        seen(tick)

    consumer = engine.add_consumer(slow, name="slow", policy="drop_oldest", maxsize=1000)
    engine.start()
    engine.subscribe(["BTCUSDT", "ETHUSDT"])
    wait_until(lambda: consumer.stats()["queued"] >= 5, 5, "a backlog behind the slow consumer")
    stopper = threading.Thread(target=engine.stop, args=(10,))
    stopper.start()
    wait_until(lambda: not engine.running, 2, "stop to begin")
    gate.set()
    stopper.join(10)
    stats = consumer.stats()
    assert stats["queued"] == 0 and stats["dropped"] == 0
    assert seen.count() == stats["received"] == stats["delivered"]


def test_reset_breaker_from_another_thread_brings_websocket_back(
    tmp_path: Path, simulator: SimulatorThread
) -> None:
    path = write_settings(
        tmp_path / "vt_setting.json",
        simulator,
        websocket__reconnect__max_attempts=3,
        websocket__circuit_breaker__failure_threshold=5,
    )
    engine = StreamEngine.from_settings(path)
    engine.start()
    try:
        engine.subscribe("BTCUSDT")

        def transport() -> str:
            status = engine.status()["adapters"]["binance"]
            return str(status["symbols"]["BTCUSDT"]["transport"])

        wait_until(lambda: transport() == "websocket", 5, "streaming over WebSocket")
        simulator.call(simulator.sim.refuse_upgrades, 60.0)
        simulator.call(simulator.sim.drop_all)

        def breaker() -> str:
            return str(engine.status()["adapters"]["binance"]["connections"][0]["breaker"])

        wait_until(lambda: breaker() == "EXHAUSTED", 5, "the breaker to give up")
        assert transport() == "http"
        simulator.call(simulator.sim.clear)
        assert engine.reset_breaker("binance") == 1
        wait_until(lambda: transport() == "websocket", 5, "WebSocket after the reset")
        assert breaker() == "CLOSED"
        assert engine.reset_breaker() == 0
    finally:
        assert engine.stop(5)


def test_the_engine_serves_metrics_and_status_and_stops_serving_with_it(
    settings_file: Path,
) -> None:
    import urllib.error
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    engine = StreamEngine.from_settings(settings_file)
    engine.start()
    try:
        engine.subscribe(["BTCUSDT"], "binance")
        with pytest.raises(ServeAddressError, match=r"port 70000: expected 0\.\.65535"):
            engine.serve(port=70000)  # named, not a bare OverflowError from bind()
        url, token = engine.serve()
        assert url.startswith("http://127.0.0.1:") and len(token) >= 16
        with pytest.raises(RuntimeError, match="already serving"):
            engine.serve()

        def ticks() -> float:
            with urllib.request.urlopen(url + "metrics", timeout=5) as resp:
                text = resp.read().decode()
            families = {f.name: f for f in text_string_to_metric_families(text)}
            return sum(s.value for s in families["foxtrot_stream_ticks"].samples)

        wait_until(lambda: ticks() > 0, 5, "ticks in /metrics")
        with urllib.request.urlopen(url + "status", timeout=5) as resp:
            status = json.loads(resp.read())
        assert list(status["adapters"][0]["symbols"]) == ["BTCUSDT"]
    finally:
        assert engine.stop(5)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "status", timeout=2)


def test_the_loop_thread_runs_uvloop_when_asked(
    settings_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `auto` takes when uvloop is installed (tests/conftest.py keeps the others on
    asyncio's loop); a loop name that is not one is refused at start, which can be retried."""
    pytest.importorskip("uvloop")
    engine = StreamEngine.from_settings(settings_file)
    monkeypatch.setenv("FOXTROT_STREAM_LOOP", "libev")
    with pytest.raises(ValueError, match="event loop 'libev'"):
        engine.start()
    monkeypatch.setenv("FOXTROT_STREAM_LOOP", "uvloop")
    ticks = Collector()
    engine.add_consumer(ticks, name="collector")
    engine.start()
    try:
        assert type(engine._loop).__module__.startswith("uvloop")
        assert engine.subscribe(["BTCUSDT"], "binance") == {}
        wait_until(lambda: ticks.symbols() == {"BTCUSDT"}, 5, "a tick")
    finally:
        assert engine.stop(5)
