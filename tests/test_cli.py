from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from foxtrot_stream.surfaces.cli import main

HERE = Path(__file__).parent


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "foxtrot_stream", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def test_plugins_lists_the_three_bundled_plugins(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--config", str(HERE / "guide_example.jsonc")]) == 0
    out = capsys.readouterr().out
    assert "binance  (foxtrot-stream-binance 0.1.0" in out
    assert "http_fallback  (foxtrot-stream-http-fallback 0.1.0" in out
    assert "core  (foxtrot-stream 0.1.0" in out
    assert "adapter   binance (BinanceAdapter): enabled, WebSocket for all symbols" in out
    assert "policy    exponential (in use)" in out
    assert "skipped" not in out


def test_plugins_says_which_event_loop(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["plugins", "--loop", "asyncio"]) == 0
    assert "event loop: asyncio (--loop asyncio)" in capsys.readouterr().out
    monkeypatch.setenv("FOXTROT_STREAM_LOOP", "auto")
    assert main(["plugins"]) == 0
    uvloop = importlib.util.find_spec("uvloop") is not None
    expected = "event loop: uvloop" if uvloop else "event loop: asyncio"
    assert expected in capsys.readouterr().out


def test_unknown_event_loop_in_the_environment_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FOXTROT_STREAM_LOOP", "trio")
    with pytest.raises(SystemExit) as exc:
        main(["run", "--symbols", "BTCUSDT"])
    assert exc.value.code == 2
    assert "event loop 'trio' (from $FOXTROT_STREAM_LOOP): expected one of" in (
        capsys.readouterr().err
    )


def test_config_check_guide_example_is_clean(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(HERE / "guide_example.jsonc")]) == 0
    assert "OK" in capsys.readouterr().out


def test_config_check_warnings_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "s.json"
    f.write_text('{"websocket.heartbeat.intervall": 3}')
    assert main(["config", "check", str(f)]) == 1
    err = capsys.readouterr().err
    assert "did you mean websocket.heartbeat.interval?" in err


def test_config_check_errors_exit_2_without_traceback(tmp_path: Path) -> None:
    f = tmp_path / "s.json"
    f.write_text('{\n"websocket.enabled": "yes",\n"websocket.reconnect.base_delay": -1\n}')
    proc = run_cli("config", "check", str(f))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert 'error: line 2: websocket.enabled = "yes": expected true or false' in proc.stderr
    assert "error: line 3: websocket.reconnect.base_delay = -1:" in proc.stderr
    assert "2 error(s)" in proc.stderr


def test_config_check_syntax_error_exit_2(tmp_path: Path) -> None:
    f = tmp_path / "s.json"
    f.write_text('{"websocket.enabled": tru}')
    proc = run_cli("config", "check", str(f))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "line 1" in proc.stderr and "invalid JSON" in proc.stderr


def test_config_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "env.json"
    f.write_text('{"websocket.enabled": 1}')
    monkeypatch.setenv("FOXTROT_SETTINGS", str(f))
    assert main(["config", "check"]) == 2


def test_config_show_marks_default_or_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    f = tmp_path / "s.json"
    f.write_text('{"websocket.enabled": true, "http_fallback.interval": 0.5}')
    assert main(["config", "show", str(f), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["websocket.enabled"] == {"value": True, "source": "file"}
    assert shown["http_fallback.interval"] == {"value": 0.5, "source": "file"}
    assert shown["websocket.reconnect.max_delay"] == {"value": 60.0, "source": "default"}
    assert shown["websocket.binance.symbols"] == {"value": [], "source": "default"}
    assert main(["config", "show", str(f)]) == 0
    text = capsys.readouterr().out
    assert any(
        line.startswith("websocket.enabled") and line.endswith("file") for line in text.splitlines()
    )


def test_missing_file_means_defaults(tmp_path: Path) -> None:
    proc = run_cli("config", "check", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "no settings file at vt_setting.json: using the defaults" in proc.stderr


def test_bad_arguments_exit_2() -> None:
    proc = run_cli("config", "frobnicate")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


def test_unknown_simulator(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "kraken"]) == 2
    assert "no simulator for adapter 'kraken'" in capsys.readouterr().err


def test_unknown_policy_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    f = tmp_path / "s.json"
    f.write_text('{"websocket.policy": "linear"}')
    for args in (("config", "check", str(f)), ("run", "--config", str(f), "--symbols", "BTCUSDT")):
        proc = run_cli(*args)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        assert "websocket.policy = 'linear': no policy plugin of that name" in proc.stderr
        assert "(installed: exponential)" in proc.stderr


def test_tail_refuses_a_url_no_source_takes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tail", "kafka://user:hunter2@broker:9092", "--symbols", "BTCUSDT"]) == 2
    err = capsys.readouterr().err
    assert "no installed source takes this URL" in err and "Traceback" not in err
    assert "hunter2" not in err


def test_plugins_lists_sources(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--config", str(HERE / "guide_example.jsonc")]) == 0
    assert "source    redis (redis://, rediss://, unix://)" in capsys.readouterr().out


def test_run_sink_with_consume_set_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "vt_setting.json"
    config.write_text('{"redis.consume": true}', encoding="utf-8")
    args = ["run", "--config", str(config), "--symbols", "BTCUSDT"]
    assert main([*args, "--sink", "redis://:pw@127.0.0.1:1/0"]) == 2
    err = capsys.readouterr().err
    assert "redis.enabled and redis.consume are both true" in err and "pw" not in err
