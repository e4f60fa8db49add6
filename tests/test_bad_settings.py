"""Settings that cannot hurt: every number bounded and finite, every unreadable file a clear
error (exit 2, one line, no traceback), and `config check` agreeing with `run`.

Each named case is one the loader let through before (a traceback, OK, or a busy loop)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from foxtrot_stream.config.settings import SettingsError, SettingsSchema, all_keys, load
from foxtrot_stream.contract.plugins import PluginHost
from foxtrot_stream.surfaces.cli import main
from foxtrot_stream.testing.settings import FAST_SETTINGS
from foxtrot_stream_binance.simulator import SimulatorConfig

sys.path.insert(0, str(Path(__file__).parent / "engine"))
from engine_helpers import SimulatorThread

HOST = PluginHost.discover()
SCHEMA = HOST.schema()


def error_of(text: str) -> str:
    with pytest.raises(SettingsError) as caught:
        load(text=text, schema=SCHEMA)
    return str(caught.value)


# --- numbers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "websocket.circuit_breaker.recovery_timeout",
        "websocket.reconnect.base_delay",
        "websocket.reconnect.max_delay",
        "websocket.heartbeat.interval",
        "http_fallback.interval",
    ],
)
@pytest.mark.parametrize("value", ["Infinity", "-Infinity", "NaN", "1e999"])
def test_no_number_may_be_infinite(key: str, value: str) -> None:
    message = error_of(f'{{"{key}": {value}}}')
    assert key in message and "finite" in message


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("websocket.heartbeat.interval", 1e-9, "a number from 0.1 to 300"),
        ("websocket.heartbeat.interval", 86400, "a number from 0.1 to 300"),
        ("http_fallback.interval", 1e-9, "a number from 0.05 to 60"),
        ("websocket.reconnect.base_delay", 1e-9, "a number from 0.01 to 3,600"),
        ("websocket.circuit_breaker.recovery_timeout", 1e9, "a number from 0.1 to 3,600"),
        ("websocket.reconnect.max_attempts", 10**4000, "an integer from 1 to 1,000,000"),
        ("binance.connection_lifetime", 10 * 86400, "a number from 1 to 86,400"),
        ("binance.request_timeout", 0.001, "a number from 0.1 to 300"),
    ],
)
def test_numbers_outside_their_range_name_key_value_and_range(
    key: str, value: float, expected: str
) -> None:
    message = error_of(json.dumps({key: value}))
    assert f"{key} = " in message and f"expected {expected}" in message
    assert len(message) < 200  # a 4,000-digit value is shown cut short


def test_every_number_key_has_a_documented_range() -> None:
    generic = SettingsSchema(adapters=("<adapter>",), plugin_settings=SCHEMA.plugin_settings)
    for doc in all_keys(generic):
        if doc.type.startswith(("number", "integer")):
            assert " from " in doc.type, doc.key


# --- files that cannot be read -----------------------------------------------------------------


def check(path: Path | str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["config", "check", str(path)])
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"websocket.enabled": \xff\xfe true}', "is not UTF-8 text (byte 0xff at offset 22)"),
        (b"\x7fELF\x02\x01\x01\x00\x00\x00", "not a settings file"),
        (b'{"websocket.reconnect.max_attempts": ' + b"9" * 5000 + b"}", "invalid JSON"),
        (b'{"a": ' * 100_000 + b"1" + b"}" * 100_000, "nested too deeply"),
        (b'{"a": ' * 20 + b"1" + b"}" * 20, "nested too deeply (at most 16 levels)"),
        (b" " * (2 << 20), "bytes: not a settings file"),
    ],
    ids=["invalid-utf8", "binary", "5000-digits", "deep-100000", "deep-20", "too-large"],
)
def test_unreadable_files_are_exit_2_with_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, expected: str
) -> None:
    f = tmp_path / "vt_setting.json"
    f.write_bytes(content)
    code, output = check(f, capsys)
    assert code == 2, output
    assert expected in output
    assert "Traceback" not in output and len(output.splitlines()) == 2  # the error, the count


def test_a_missing_or_directory_path_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = check(tmp_path / "nope.json", capsys)
    assert code == 2 and "no settings file at" in output and "nope.json" in output
    code, output = check(tmp_path, capsys)
    assert code == 2 and "is a directory" in output
    assert main(["run", "--config", str(tmp_path / "nope.json"), "--symbols", "BTCUSDT"]) == 2


def test_a_byte_order_mark_is_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """What Windows editors write in front of UTF-8: we read it; in a file named
    vt_setting.json it is a warning, as the hosts' json.load refuses it."""
    f = tmp_path / "settings.json"
    f.write_bytes(b'\xef\xbb\xbf{"websocket.enabled": true}')
    code, output = check(f, capsys)
    assert code == 0, output
    assert load(f, SCHEMA).settings.websocket.enabled is True
    host_file = tmp_path / "vt_setting.json"
    host_file.write_bytes(f.read_bytes())
    code, output = check(host_file, capsys)
    assert code == 1 and "it starts with a byte order mark" in output, output


@pytest.mark.parametrize(
    "text",
    ['{\n  // the guide\n  "websocket.enabled": true\n}', '{"websocket.enabled": true,}'],
)
def test_comments_in_a_file_the_host_reads_are_a_warning_that_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    host_file = tmp_path / "vt_setting.json"
    host_file.write_text(text, encoding="utf-8")
    code, output = check(host_file, capsys)
    assert code == 1, output
    assert "vt_setting.json is not strict JSON: comments or trailing commas (line" in output
    assert "Foxtrot and vnpy load vt_setting.json" in output and "json.load" in output
    lines = output.splitlines()
    assert len(lines) == 2 and sum(line.startswith("warning: ") for line in lines) == 1, output
    mine = tmp_path / "stream.json"  # foxtrot-stream's own file: comments welcome
    mine.write_text(text, encoding="utf-8")
    assert check(mine, capsys)[0] == 0
    assert main(["config", "check", "--strict", str(mine)]) == 1  # unless meant for a host
    with open(host_file, encoding="utf-8") as f, pytest.raises(json.JSONDecodeError):
        json.load(f)  # what the hosts do


def test_the_real_command_prints_no_traceback(tmp_path: Path) -> None:
    f = tmp_path / "vt_setting.json"
    f.write_bytes(b'{"websocket.heartbeat.interval": 1e-9, "x": "\xc3\x28"}')
    done = subprocess.run(
        [sys.executable, "-m", "foxtrot_stream", "config", "check", str(f)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "not UTF-8" in done.stderr and "Traceback" not in done.stderr


# --- generated documents: config check and run agree -----------------------------------------

KEYS = sorted({d.key for d in all_keys(SCHEMA)} - {"binance.ws_url", "binance.rest_url"})
numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1e-9, 0.05, 0.3, 1, 30, 3600, 1e9]),
)
scalars = st.one_of(numbers, st.booleans(), st.none(), st.text(max_size=12))
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
key_names = st.one_of(
    st.sampled_from(KEYS),
    st.sampled_from(KEYS).map(lambda k: k[:-1]),  # a misspelling
    st.text(min_size=1, max_size=20),
)
documents = st.dictionaries(
    key_names, st.one_of(values, st.sampled_from([True, False, ["BTCUSDT"]])), max_size=6
)


def _dump(doc: dict[str, Any]) -> str:
    try:
        return json.dumps(doc)  # Infinity and NaN as JSON's extension writes them
    except ValueError:
        return "{}"  # an integer beyond the digit limit: covered by the cases above


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(documents)
def test_config_check_exit_code_matches_its_messages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], doc: dict[str, Any]
) -> None:
    f = tmp_path / "vt_setting.json"
    f.write_text(_dump(doc), encoding="utf-8")
    code, output = check(f, capsys)
    lines = output.splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    warnings = [line for line in lines if line.startswith("warning:")]
    assert "Traceback" not in output
    if code == 2:
        # a settings error, or a plugin the settings need that is missing (a policy name)
        assert (errors and lines[-1].endswith("error(s) in the settings")) or (
            lines[-1].startswith("foxtrot-stream: ") and "plugin" in lines[-1]
        ), output
    elif code == 1:
        assert warnings and not errors
    else:
        assert code == 0 and not errors and not warnings, output


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorThread]:
    sim = SimulatorThread(SimulatorConfig(symbols=("BTCUSDT",), rate=20.0, seed=3))
    yield sim
    sim.close()


plausible = st.one_of(
    st.sampled_from([0.01, 0.05, 0.1, 0.3, 1, 2, 5, 30, 50, 60, 300, 3600, 86400]),
    st.floats(min_value=0.0, max_value=4000.0),
    st.integers(min_value=0, max_value=2000),
)
TYPES = {d.key: d.type for d in all_keys(SCHEMA)}


def plausible_for(key: str) -> st.SearchStrategy[Any]:
    kind = TYPES[key]
    if kind.startswith(("number", "integer")):
        return plausible
    if kind == "boolean":
        return st.booleans()
    if kind.startswith("list"):
        return st.just(["BTCUSDT"])
    return st.just("exponential")


runnable = st.lists(st.sampled_from(KEYS), max_size=4, unique=True).flatmap(
    lambda keys: st.fixed_dictionaries({k: plausible_for(k) for k in keys})
)


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.one_of(runnable, runnable, runnable, documents))
def test_whatever_config_check_accepts_run_starts_with(
    simulator: SimulatorThread,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    doc: dict[str, Any],
) -> None:
    f = tmp_path / "vt_setting.json"
    f.write_text(_dump(doc | simulator.sim.settings()), encoding="utf-8")
    accepted, output = check(f, capfd)
    event(f"config check exit {accepted}")
    if accepted == 2:
        return  # refused with a message, as above
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        code = main(
            [
                *("run", "--config", str(f), "--symbols", "BTCUSDT"),
                *("--duration", "0.3", "--format", "jsonl"),
            ]
        )
    out = capfd.readouterr()
    assert code == 0, (output, out.err)
    assert "Traceback" not in out.err
    crashed = [r for r in caplog.records if r.exc_info is not None]
    assert not crashed, [r.getMessage() for r in crashed]


def test_fast_settings_stay_within_the_bounds() -> None:
    """The scaled-down timings the end-to-end tests use are valid settings."""
    load(text=json.dumps(FAST_SETTINGS), schema=SCHEMA)


def test_a_long_url_with_credentials_is_redacted_before_it_is_cut_short() -> None:
    """A bad value is shown cut to 60 characters; a URL's password must not survive the cut."""
    url = "wss://averyveryverylongusername:secretpassword123@api.binance.com/api"
    message = error_of(json.dumps({"binance.rest_url": url}))  # wrong scheme: shown, refused
    assert "binance.rest_url = " in message
    assert "secretpass" not in message and "averyvery" not in message
