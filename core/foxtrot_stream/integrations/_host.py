"""What the host integrations (Foxtrot, vnpy) share; imports no host platform.

* `engine_for_host`: a `StreamEngine` from the host's own settings dict (`SETTINGS`, already
  loaded from its trader folder) merged with an optional settings file and the connect
  dialog's values.
* `HostLog`: every line of our loggers, for as long as a gateway is connected, handed to the
  host as a log event, whether or not the host configured Python logging.
* `check_dialog`: the connect dialog's own keys (policy, maxsize, timeout), checked.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from foxtrot_stream.config.settings import ENV_VAR, Problem, SettingsError, load
from foxtrot_stream.contract.plugins import PluginHost
from foxtrot_stream.contract.records import Instrument, PollError
from foxtrot_stream.integrations.engine import POLICIES, Policy, StreamEngine

#: Loggers of the core whatever the adapter (`serve` logs as "foxtrot-stream").
CORE_LOGGERS = ("foxtrot_stream", "foxtrot-stream")


def logger_names(plugins: PluginHost) -> list[str]:
    """Every logger a feed of the installed adapters writes to (the guide's names)."""
    names = list(CORE_LOGGERS)
    for spec in plugins.adapters.values():
        names += [spec.display_name, f"{spec.display_name}WebSocket", f"{spec.display_name}Error"]
    return names


def settings_file_path(value: str, folder: Path | None) -> Path | None:
    """The settings file a connect dialog names: relative to the host's trader folder
    (where the host keeps its own vt_setting.json); empty: `$FOXTROT_SETTINGS`, else none."""
    text = value.strip() or os.environ.get(ENV_VAR, "")
    if not text:
        return None
    path = Path(text).expanduser()
    if not path.is_absolute() and folder is not None:
        path = folder / path
    return path


def engine_for_host(
    host_settings: Mapping[str, Any],
    dialog: Mapping[str, Any],
    folder: Path | None,
    plugins: PluginHost,
) -> StreamEngine:
    """The host's settings, then the named settings file's keys, then the dialog's dotted
    keys (`"binance.rest_url"`), checked as one settings file would be. Raises
    `SettingsError` (an unreadable or missing named file included) or `PluginLoadError`."""
    merged = dict(host_settings)
    path = settings_file_path(str(dialog.get("settings_file") or ""), folder)
    if path is not None:
        if not path.exists():  # named: missing is an error, never a fallback to defaults
            hint = (
                " (a relative settings_file is read from the host's trader folder, where the "
                "host keeps its vt_setting.json)"
                if folder is not None
                else ""
            )
            problem = Problem("error", "settings_file", f"no settings file at {path}{hint}")
            raise SettingsError([problem])
        merged.update(load(path, plugins.schema()).values)
    merged.update({k: v for k, v in dialog.items() if "." in k})
    return StreamEngine.from_mapping(merged, host=plugins)


def check_dialog(setting: Mapping[str, Any]) -> tuple[Policy, int, float]:
    """(policy, maxsize, timeout) from the connect dialog's values; ValueError naming the key,
    the value and what was expected (numeric text is accepted: dialogs send text)."""
    policy = str(setting["policy"])
    if policy not in POLICIES:
        raise ValueError(f"policy = {policy!r}: expected one of {', '.join(POLICIES)}")
    maxsize = int(_number(setting, "maxsize", int, 1, "an integer of at least 1"))
    timeout = _number(setting, "timeout", float, 0.0, "a number of seconds above 0")
    return next(p for p in POLICIES if p == policy), maxsize, timeout


def _number(
    setting: Mapping[str, Any], key: str, kind: type[float], floor: float, expected: str
) -> float:
    """`setting[key]` as `kind` (int or float); an int must be at least `floor`, a float
    above it; else a ValueError naming the key, the value and what was expected."""
    value = setting[key]
    try:
        if isinstance(value, bool):
            raise ValueError
        number = kind(value)
        exact = float(value) == number  # an int setting must not be silently truncated
    except (TypeError, ValueError):
        raise ValueError(f"{key} = {value!r}: expected {expected}") from None
    too_small = number <= floor if kind is float else number < floor
    if not exact or too_small:  # (NaN compares unequal: not exact)
        raise ValueError(f"{key} = {value!r}: expected {expected}")
    return number


def settings_problems(exc: SettingsError) -> list[tuple[str, int]]:
    """A `SettingsError` as host log lines: (text, level), errors and warnings."""
    return [
        (f"settings: {p}", logging.ERROR if p.severity == "error" else logging.WARNING)
        for p in exc.problems
        if p.severity != "info"
    ]


def transport_notice(engine: StreamEngine) -> str | None:
    """A line for the host's log when its settings leave WebSocket off (Foxtrot's own default
    for `websocket.enabled` is false): otherwise a user sees slow ticks and no reason."""
    if engine.settings.websocket.enabled or engine.host.consuming_source(engine.settings):
        return None  # (consuming: the ticks come from a source, not from the exchange)
    return (
        "websocket.enabled is false in the settings: every symbol is polled over HTTP; "
        'set "websocket.enabled": true in vt_setting.json to stream over WebSocket'
    )


# --- logs ---------------------------------------------------------------------------------------


class _Handler(logging.Handler):
    def __init__(self, post: Callable[[str, int], None]) -> None:
        super().__init__(logging.INFO)
        self.post = post

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                exc = record.exc_info[1]
                text = f"{text}: {type(exc).__name__}: {exc}"
            self.post(f"{record.name}: {text}", record.levelno)
        except Exception:
            self.handleError(record)


_levels_lock = threading.Lock()
_raised: dict[str, int] = {}
"""logger name → how many attached `HostLog`s need it at INFO (we set its level)."""


class HostLog:
    """Hands our loggers' lines (INFO and above) to `post(text, level)` while attached.

    A logger the host left unconfigured (level NOTSET, so WARNING from the root) is set to
    INFO while attached, and reset when the last `HostLog` detaches; a level the host set is
    left alone. Nothing here runs per tick: the feed logs state changes only."""

    def __init__(self, post: Callable[[str, int], None]) -> None:
        self.handler = _Handler(post)
        self.names: list[str] = []

    def attach(self, names: Iterable[str]) -> None:
        if self.names:
            return
        self.names = list(dict.fromkeys(names))
        with _levels_lock:
            for name in self.names:
                logger = logging.getLogger(name)
                logger.addHandler(self.handler)
                if name in _raised:
                    _raised[name] += 1
                elif logger.level == logging.NOTSET and logger.getEffectiveLevel() > logging.INFO:
                    logger.setLevel(logging.INFO)
                    _raised[name] = 1

    def detach(self) -> None:
        with _levels_lock:
            for name in self.names:
                logger = logging.getLogger(name)
                logger.removeHandler(self.handler)
                if name in _raised:
                    _raised[name] -= 1
                    if _raised[name] == 0:
                        del _raised[name]
                        if logger.level == logging.INFO:  # unless someone changed it since
                            logger.setLevel(logging.NOTSET)
        self.names = []


# --- contracts ------------------------------------------------------------------------------


def fetch_instruments(
    engine: StreamEngine,
    adapters: Iterable[str],
    publish: Callable[[str, tuple[Instrument, ...]], None],
    warn: Callable[[str], None],
) -> None:
    """Ask each adapter for its instruments (the `Instruments` capability), without waiting:
    `publish(adapter, the trading ones)` or `warn(why)` runs on the loop thread when the
    exchange answers (both must only hand the result to the host's event queue). An adapter
    without the capability gets a `warn` that says so."""
    for name in adapters:

        def done(
            future: concurrent.futures.Future[tuple[Instrument, ...]], name: str = name
        ) -> None:
            if future.cancelled():
                return
            exc = future.exception()
            if isinstance(exc, PollError | TypeError | RuntimeError):  # (TypeError: no such
                # capability; RuntimeError: the engine stopped first)
                warn(f"no contracts for {name}: {exc}")
            elif exc is not None:
                warn(f"no contracts for {name}: {type(exc).__name__}: {exc}")
            else:
                publish(name, tuple(i for i in future.result() if i.trading))

        engine.submit_instruments(name).add_done_callback(done)


def loaded_host_settings(
    settings_module: str, utility_module: str
) -> tuple[dict[str, Any], Path | None]:
    """A host's SETTINGS as its own settings module loaded them, and the folder of its
    vt_setting.json (`TEMP_DIR`); nothing when the host has not loaded them: importing them
    here would make the host pick a trader folder, even create one in the home directory.
    Foxtrot: `foxtrot.util.settings` / `foxtrot.util.utility`; vnpy: `vnpy.trader.setting` /
    `vnpy.trader.utility`."""
    setting = sys.modules.get(settings_module)
    utility = sys.modules.get(utility_module)
    values = dict(getattr(setting, "SETTINGS", {}))
    folder = getattr(utility, "TEMP_DIR", None)
    return values, None if folder is None else Path(folder)
