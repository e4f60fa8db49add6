"""What the Foxtrot and vnpy integrations share, without a host: settings from a host's dict,
a settings file in its trader folder and the dialog, and our log lines handed to the host."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from foxtrot_stream.config.settings import ENV_VAR, SettingsError
from foxtrot_stream.contract.plugins import PluginHost
from foxtrot_stream.integrations._host import (
    HostLog,
    engine_for_host,
    settings_file_path,
    transport_notice,
)
from foxtrot_stream.integrations.engine import StreamEngine


@pytest.fixture(scope="module")
def plugins() -> PluginHost:
    return PluginHost.discover()


def test_from_mapping_checks_the_keys_as_a_file(plugins: PluginHost) -> None:
    engine = StreamEngine.from_mapping(
        {"websocket.enabled": True, "font.family": "Arial", "binance.request_timeout": 2.0},
        host=plugins,
    )
    assert (
        engine.settings.websocket.enabled and engine.settings.plugin("binance").request_timeout == 2
    )
    with pytest.raises(SettingsError, match=r"websocket\.heartbeat\.interval = 0"):
        StreamEngine.from_mapping({"websocket.heartbeat.interval": 0}, host=plugins)


def test_host_then_file_then_dialog(
    plugins: PluginHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    host = {
        "websocket.enabled": True,
        "http_fallback.interval": 2.0,
        "binance.request_timeout": 3.0,
    }
    (tmp_path / "stream.json").write_text(
        '{\n  // ours may have comments\n  "http_fallback.interval": 0.5,\n}', encoding="utf-8"
    )
    dialog = {"settings_file": "stream.json", "binance.request_timeout": 4.0, "policy": "x"}
    settings = engine_for_host(host, dialog, tmp_path, plugins).settings
    assert settings.websocket.enabled is True  # the host's
    assert settings.plugin("http_fallback").interval == 0.5  # the file's
    assert settings.plugin("binance").request_timeout == 4.0  # the dialog's
    assert transport_notice(engine_for_host({}, {}, tmp_path, plugins)) is not None
    assert transport_notice(engine_for_host(host, {}, tmp_path, plugins)) is None


def test_a_named_file_is_in_the_trader_folder_and_must_be_there(
    plugins: PluginHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert settings_file_path("", tmp_path) is None
    assert settings_file_path("a.json", tmp_path) == tmp_path / "a.json"
    assert settings_file_path("/etc/a.json", tmp_path) == Path("/etc/a.json")
    assert settings_file_path("a.json", None) == Path("a.json")
    monkeypatch.setenv(ENV_VAR, "env.json")
    assert settings_file_path("", tmp_path) == tmp_path / "env.json"
    with pytest.raises(SettingsError, match=r"no settings file at .*env\.json"):
        engine_for_host({}, {}, tmp_path, plugins)  # never a silent fallback to defaults
    (tmp_path / "env.json").write_text(json.dumps({"websocket.enabled": True}), "utf-8")
    assert engine_for_host({}, {}, tmp_path, plugins).settings.websocket.enabled


def test_our_log_lines_reach_the_host_while_attached_and_levels_are_restored() -> None:
    posted: list[tuple[str, int]] = []
    first, second = HostLog(lambda t, lv: posted.append((t, lv))), HostLog(lambda t, lv: None)
    name = "TestHostLogAdapter"
    logger = logging.getLogger(name)
    assert logger.level == logging.NOTSET and logger.getEffectiveLevel() > logging.INFO
    first.attach([name])
    second.attach([name])
    logger.info("WebSocket connection established")
    logger.debug("not this")
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed")
    first.detach()
    assert logger.level == logging.INFO  # the second still needs it
    second.detach()
    assert logger.level == logging.NOTSET and logger.handlers == []
    logger.warning("after")
    assert posted == [
        (f"{name}: WebSocket connection established", logging.INFO),
        (f"{name}: failed: ValueError: boom", logging.ERROR),
    ]


def test_a_level_the_host_set_is_left_alone() -> None:
    logger = logging.getLogger("TestHostLogConfigured")
    logger.setLevel(logging.ERROR)
    log = HostLog(lambda t, lv: None)
    log.attach([logger.name])
    assert logger.level == logging.ERROR
    log.detach()
    assert logger.level == logging.ERROR
