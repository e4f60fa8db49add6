from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from foxtrot_stream.config.settings import (
    Problem,
    SettingsError,
    SettingsSchema,
    defaults,
    load,
    settings_path,
)
from foxtrot_stream.util.jsonc import strip_comments

HERE = Path(__file__).parent
GUIDE = HERE.parents[1] / "shared" / "spec" / "websocket-configuration-guide.md"


def errors_of(text: str, schema: SettingsSchema) -> list[Problem]:
    with pytest.raises(SettingsError) as info:
        load(text=text, schema=schema)
    return [p for p in info.value.problems if p.severity == "error"]


def guide_example() -> str:
    """The guide's configuration example exactly as printed in the guide, comments and all."""
    if GUIDE.exists():
        text = GUIDE.read_text(encoding="utf-8")
        return re.search(r"```json\n(\{.*?\})\n```", text, re.S).group(1)  # type: ignore[union-attr]
    return (HERE / "guide_example.jsonc").read_text(encoding="utf-8").rstrip("\n")


def test_guide_example_loads_as_pasted(schema: SettingsSchema) -> None:
    # the copy kept with the tests is the guide's, exactly (checked when the guide is beside us)
    assert guide_example() == (HERE / "guide_example.jsonc").read_text().rstrip("\n")
    loaded = load(text=guide_example(), schema=schema)
    s = loaded.settings
    assert loaded.problems == ()
    assert s.websocket.enabled is True
    assert s.adapter("binance").enabled is True
    assert s.adapter("binance").symbols == ()
    assert s.websocket.reconnect.max_attempts == 50
    assert s.websocket.heartbeat.interval == 30.0
    assert s.websocket.circuit_breaker.recovery_timeout == 60.0


def test_defaults_are_the_guides(schema: SettingsSchema) -> None:
    s = defaults(schema)
    ws = s.websocket
    assert ws.enabled is False
    assert (ws.reconnect.max_attempts, ws.reconnect.base_delay, ws.reconnect.max_delay) == (
        50,
        1.0,
        60.0,
    )
    assert ws.reconnect.jitter == 0.0
    assert ws.heartbeat.interval == 30.0
    assert (ws.circuit_breaker.failure_threshold, ws.circuit_breaker.recovery_timeout) == (5, 60.0)
    assert s.adapter("binance").enabled is True
    assert s.adapter("binance").symbols == ()
    assert s.plugin("http_fallback").interval == 1.0
    assert s.plugin("binance").ws_url.startswith("wss://")
    assert s.plugin("binance").rest_url.startswith("https://")


def test_per_adapter_keys_work_for_any_installed_adapter() -> None:
    schema = SettingsSchema(adapters=("binance", "kraken"))
    s = load(
        text='{"websocket.kraken.enabled": false, "websocket.kraken.symbols": ["XBTUSD"]}',
        schema=schema,
    ).settings
    assert s.adapter("kraken").enabled is False
    assert s.adapter("kraken").symbols == ("XBTUSD",)
    assert s.adapter("binance").enabled is True


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ('{"websocket.enabled": "yes"}', "websocket.enabled", "expected true or false"),
        ('{"websocket.reconnect.base_delay": -1}', "websocket.reconnect.base_delay", "> 0|greater"),
        ('{"websocket.reconnect.base_delay": 0}', "websocket.reconnect.base_delay", "greater"),
        ('{"websocket.heartbeat.interval": 0}', "websocket.heartbeat.interval", "greater"),
        (
            '{"websocket.circuit_breaker.recovery_timeout": -5}',
            "websocket.circuit_breaker.recovery_timeout",
            "greater",
        ),
        (
            '{"websocket.reconnect.base_delay": 10, "websocket.reconnect.max_delay": 5}',
            "websocket.reconnect.max_delay",
            "at least websocket.reconnect.base_delay",
        ),
        (
            '{"websocket.circuit_breaker.failure_threshold": 0}',
            "websocket.circuit_breaker.failure_threshold",
            "at least 1",
        ),
        (
            '{"websocket.reconnect.max_attempts": 2.5}',
            "websocket.reconnect.max_attempts",
            "expected an integer",
        ),
        (
            '{"websocket.binance.symbols": "BTCUSDT"}',
            "websocket.binance.symbols",
            "list of symbols",
        ),
        ('{"websocket.binance.symbols": ["BTCUSDT", 3]}', "websocket.binance.symbols", "strings"),
        ('{"websocket.binance.symbols": [""]}', "websocket.binance.symbols", "non-empty"),
        ('{"websocket.reconnect.jitter": 1.5}', "websocket.reconnect.jitter", "from 0 to 1"),
        ('{"http_fallback.interval": 0}', "http_fallback.interval", "greater"),
        ('{"binance.ws_url": "http://x"}', "binance.ws_url", "ws:// or wss://"),
        (
            '{"websocket.kraken.enabled": true}',
            "websocket.kraken.enabled",
            "not installed|no adapter",
        ),
    ],
)
def test_bad_values_name_key_value_and_expectation(
    schema: SettingsSchema, text: str, key: str, expected: str
) -> None:
    (problem,) = errors_of(text, schema)
    assert problem.key == key
    assert re.search(expected, problem.message), problem.message
    assert problem.line == 1
    shown = str(problem)
    assert key in shown
    assert json.dumps(json.loads(text)[key]) in shown  # the bad value is quoted back


def test_all_problems_reported_at_once_with_lines(schema: SettingsSchema) -> None:
    text = """{
  "websocket.enabled": "yes",
  "websocket.reconnect.base_delay": -1,
  "websocket.circuit_breaker.failure_threshold": 0,
  "websocket.binance.symbols": "BTCUSDT",
  "websocket.reconect.max_delay": 3,
}"""
    with pytest.raises(SettingsError) as info:
        load(text=text, schema=schema)
    problems = info.value.problems
    errors = {p.key: p.line for p in problems if p.severity == "error"}
    assert errors == {
        "websocket.enabled": 2,
        "websocket.reconnect.base_delay": 3,
        "websocket.circuit_breaker.failure_threshold": 4,
        "websocket.binance.symbols": 5,
    }
    (warning,) = [p for p in problems if p.severity == "warning"]
    assert warning.key == "websocket.reconect.max_delay"
    assert "did you mean websocket.reconnect.max_delay" in warning.message
    assert warning.line == 6


def test_unknown_key_is_a_warning_with_suggestion(schema: SettingsSchema) -> None:
    loaded = load(text='{"websocket.heartbeat.intervl": 5, "binance.rest_ur": "x"}', schema=schema)
    msgs = {p.key: p.message for p in loaded.warnings}
    assert "did you mean websocket.heartbeat.interval?" in msgs["websocket.heartbeat.intervl"]
    assert "did you mean binance.rest_url?" in msgs["binance.rest_ur"]
    assert loaded.settings.websocket.heartbeat.interval == 30.0


def test_host_application_keys_are_left_alone(schema: SettingsSchema) -> None:
    loaded = load(text='{"font.family": "Arial", "database.name": "sqlite"}', schema=schema)
    assert loaded.problems == ()


def test_misspelt_prefix_is_caught(schema: SettingsSchema) -> None:
    loaded = load(text='{"websokcet.enabled": true}', schema=schema)
    (w,) = loaded.warnings
    assert "did you mean websocket" in w.message


def test_lowercase_symbols_normalised_and_said_once(schema: SettingsSchema) -> None:
    loaded = load(
        text='{"websocket.binance.symbols": ["btcusdt", "ETHUSDT", "BTCUSDT"]}', schema=schema
    )
    assert loaded.settings.adapter("binance").symbols == ("BTCUSDT", "ETHUSDT")
    infos = [p for p in loaded.problems if p.severity == "info"]
    assert len(infos) == 1
    assert "upper case" in infos[0].message


def test_json_syntax_error_has_line_and_column(schema: SettingsSchema) -> None:
    text = '{\n  "websocket.enabled": true\n  "websocket.binance.enabled": false\n}'
    with pytest.raises(SettingsError) as info:
        load(text=text, schema=schema)
    (p,) = info.value.problems
    assert p.line == 3
    assert "column 3" in p.message
    assert "invalid JSON" in p.message


def test_unterminated_comment(schema: SettingsSchema) -> None:
    with pytest.raises(SettingsError) as info:
        load(text='{\n "websocket.enabled": true /* oops\n}', schema=schema)
    assert info.value.problems[0].line == 2


def test_not_an_object(schema: SettingsSchema) -> None:
    with pytest.raises(SettingsError, match="expected a JSON object"):
        load(text="[1, 2]", schema=schema)


def test_duplicate_key_warns(schema: SettingsSchema) -> None:
    loaded = load(text='{"websocket.enabled": false, "websocket.enabled": true}', schema=schema)
    assert loaded.settings.websocket.enabled is True
    assert "more than once" in loaded.warnings[0].message


def test_nested_objects_are_accepted(schema: SettingsSchema) -> None:
    s = load(text='{"websocket": {"enabled": true, "reconnect": {"max_delay": 9}}}', schema=schema)
    assert s.settings.websocket.enabled is True
    assert s.settings.websocket.reconnect.max_delay == 9.0


def test_a_missing_default_file_is_defaults_with_one_info_line(
    tmp_path: Path,
    schema: SettingsSchema,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FOXTROT_SETTINGS", raising=False)
    with caplog.at_level(logging.INFO, logger="foxtrot_stream.config.settings"):
        loaded = load(None, schema)
    assert loaded.settings.websocket == defaults(schema).websocket
    assert len(caplog.records) == 1
    assert "vt_setting.json" in caplog.records[0].getMessage()


def test_a_missing_named_file_is_an_error(
    tmp_path: Path, schema: SettingsSchema, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Named by --config or $FOXTROT_SETTINGS, a missing file is a mistake, not defaults."""
    with pytest.raises(SettingsError, match=r"no settings file at .*absent\.json"):
        load(tmp_path / "absent.json", schema)
    monkeypatch.setenv("FOXTROT_SETTINGS", str(tmp_path / "env.json"))
    with pytest.raises(SettingsError, match=r"no settings file at .*env\.json"):
        load(None, schema)


def test_settings_path_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("FOXTROT_SETTINGS", raising=False)
    assert settings_path(None) == Path("vt_setting.json")
    monkeypatch.setenv("FOXTROT_SETTINGS", str(tmp_path / "env.json"))
    assert settings_path(None) == tmp_path / "env.json"
    assert settings_path(tmp_path / "cli.json") == tmp_path / "cli.json"


def test_file_origin_is_tracked(tmp_path: Path, schema: SettingsSchema) -> None:
    f = tmp_path / "vt_setting.json"
    f.write_text('{"websocket.enabled": true}')
    s = load(f, schema).settings
    assert s.origin == {"websocket.enabled": "file"}
    assert s.path == f


@given(
    st.dictionaries(
        st.sampled_from(["websocket.enabled", "websocket.binance.enabled"]),
        st.booleans(),
    ),
    st.sampled_from(["", "// c\n", "/* c */"]),
    st.booleans(),
)
def test_comments_and_trailing_commas_never_change_the_data(
    data: dict[str, bool], comment: str, trailing: bool
) -> None:
    body = ",\n".join(f'{comment}"{k}": {json.dumps(v)} {comment}' for k, v in data.items())
    text = "{" + body + ("," if trailing and data else "") + "\n}"
    assert json.loads(strip_comments(text)) == data


def test_strings_that_look_like_comments_survive() -> None:
    text = '{"binance.ws_url": "ws://127.0.0.1:1/*x*/", "k": "a//b", "l": "x,]"}'
    assert json.loads(strip_comments(text)) == json.loads(text)


def test_plain_url_to_a_remote_host_is_a_warning(schema: SettingsSchema) -> None:
    loaded = load(text='{"binance.ws_url": "ws://stream.example.com:9443"}', schema=schema)
    (w,) = loaded.warnings
    assert w.key == "binance.ws_url"
    assert "not encrypted" in w.message
    local = load(
        text='{"binance.ws_url": "ws://127.0.0.1:9443", "binance.rest_url": "http://localhost:1"}',
        schema=schema,
    )
    assert local.warnings == ()
    secure = load(text='{"binance.rest_url": "https://testnet.binance.vision"}', schema=schema)
    assert secure.warnings == ()
