"""Settings: attrs classes with the guide's keys and defaults, and the `vt_setting.json` loader.

`vt_setting.json` is a flat object with dotted keys, as in Foxtrot and vnpy; other parts of the
host application keep their own keys in the same file (`font.family`, `database.name`, …). We
own the keys under `websocket.` and under each installed plugin's settings key (`binance.`,
`http_fallback.`): those are validated, and an unknown one is a warning with a suggestion.
A key elsewhere is the host's business, unless it looks like a misspelling of one of ours.

Every problem is reported at once, each with the key, the bad value, what was expected and the
line in the file.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, NewType
from urllib.parse import urlsplit

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError

from foxtrot_stream.util.jsonc import JsoncError, key_lines, strip_comments
from foxtrot_stream.util.redact import redact
from foxtrot_stream.util.shard import SHARD_FORM, parse_shard

log = logging.getLogger("foxtrot_stream.config.settings")

ENV_VAR = "FOXTROT_SETTINGS"
DEFAULT_FILE = "vt_setting.json"

PositiveFloat = NewType("PositiveFloat", float)
PositiveInt = NewType("PositiveInt", int)
Fraction = NewType("Fraction", float)
Symbols = NewType("Symbols", tuple[str, ...])
WebSocketUrl = NewType("WebSocketUrl", str)
HttpUrl = NewType("HttpUrl", str)
ShardText = NewType("ShardText", str)


def _doc(text: str) -> dict[str, str]:
    return {"doc": text}


def ranged(doc: str, *, low: float, high: float) -> dict[str, Any]:
    """The metadata of a numeric settings field with its valid range, inclusive
    (`attrs.field(default=…, metadata=ranged(…))`): a value outside it is an error naming the
    key, the value and the range, and docs/configuration.md lists the range. Plugins use it
    for their own keys too. Every number is finite, whatever its range."""
    return {"doc": doc, "range": (low, high)}


#: Limits of the file itself: larger, or nested deeper, is not a settings file.
MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 16


@attrs.frozen
class ReconnectSettings:
    max_attempts: PositiveInt = attrs.field(
        default=PositiveInt(50),
        metadata=ranged(
            "Consecutive failed WebSocket attempts after which the adapter stays on HTTP polling "
            "(breaker state `EXHAUSTED`) until an operator resets it.",
            low=1,
            high=1_000_000,
        ),
    )
    base_delay: PositiveFloat = attrs.field(
        default=PositiveFloat(1.0),
        metadata=ranged(
            "Delay before the first reconnection attempt (seconds); doubles each time. At least "
            "0.01 s: shorter would hammer the exchange.",
            low=0.01,
            high=3600.0,
        ),
    )
    max_delay: PositiveFloat = attrs.field(
        default=PositiveFloat(60.0),
        metadata=ranged(
            "Cap on the delay between attempts (seconds); at least `base_delay`. At most an hour, "
            "so that a recovered exchange is tried again the same hour.",
            low=0.01,
            high=3600.0,
        ),
    )
    jitter: Fraction = attrs.field(
        default=Fraction(0.0),
        metadata=ranged(
            "Fraction (0 to 1) by which each delay is randomly shortened, so a fleet does not "
            "reconnect in lockstep. 0 keeps the documented timeline exactly.",
            low=0.0,
            high=1.0,
        ),
    )


@attrs.frozen
class HeartbeatSettings:
    interval: PositiveFloat = attrs.field(
        default=PositiveFloat(30.0),
        metadata=ranged(
            "Seconds between pings. A symbol quiet for half of it is verified by HTTP polling, a "
            "connection silent for twice it (while REST shows changes) is replaced, and a "
            "connection is healthy only after staying up this long with data. Sets the liveness "
            "bound (docs/user-guide.md), hence at most 300 s; at least 0.1 s (the health checks "
            "run every half interval).",
            low=0.1,
            high=300.0,
        ),
    )


@attrs.frozen
class CircuitBreakerSettings:
    failure_threshold: PositiveInt = attrs.field(
        default=PositiveInt(5),
        metadata=ranged(
            "Consecutive failures that open the breaker (WebSocket attempts pause; the symbols are "
            "polled meanwhile).",
            low=1,
            high=1000,
        ),
    )
    recovery_timeout: PositiveFloat = attrs.field(
        default=PositiveFloat(60.0),
        metadata=ranged(
            "Seconds the breaker stays open before one WebSocket probe (half-open); also how often "
            "a symbol the WebSocket lost is resubscribed. 0.1 s to an hour.",
            low=0.1,
            high=3600.0,
        ),
    )


@attrs.frozen
class AdapterWebSocketSettings:
    """`websocket.<adapter>.*`: the same keys for every installed adapter."""

    enabled: bool = attrs.field(
        default=True,
        metadata=_doc("WebSocket for this adapter (when `websocket.enabled` is on); off = HTTP."),
    )
    symbols: Symbols = attrs.field(
        default=Symbols(()),
        metadata=_doc(
            "Symbols that use WebSocket; empty = all. Others are served by HTTP polling. "
            "Also the default symbol list of `foxtrot-stream run`."
        ),
    )
    shard: ShardText = attrs.field(
        default=ShardText("0/1"),
        metadata=_doc(
            "`I/N`: this process streams only the symbols of shard I of N (a stable hash of "
            "the symbol, the same in every process), whether named or found by `run --all`; "
            "run one process per shard, two for redundancy. `0/1` = every symbol. Also "
            "`foxtrot-stream run --shard I/N`."
        ),
    )


@attrs.frozen
class WebSocketSettings:
    enabled: bool = attrs.field(
        default=False,
        metadata=_doc("Master switch for WebSocket streaming (off: everything is polled)."),
    )
    policy: str = attrs.field(
        default="exponential",
        metadata=_doc("Name of the reconnection/breaker policy plugin to use."),
    )
    reconnect: ReconnectSettings = ReconnectSettings()
    heartbeat: HeartbeatSettings = HeartbeatSettings()
    circuit_breaker: CircuitBreakerSettings = CircuitBreakerSettings()


#: Names under `websocket.` that are not adapters; an adapter may not be called any of these.
GLOBAL_GROUPS = frozenset(f.name for f in attrs.fields(WebSocketSettings))


@attrs.frozen
class Settings:
    """The effective settings. `adapters` has an entry for every installed adapter."""

    websocket: WebSocketSettings = WebSocketSettings()
    adapters: Mapping[str, AdapterWebSocketSettings] = attrs.Factory(dict)
    plugins: Mapping[str, Any] = attrs.Factory(dict)
    """Each plugin's own settings object, by settings key."""
    origin: Mapping[str, str] = attrs.Factory(dict)
    """Dotted key → "file" for keys set in the file (anything absent is a default)."""
    path: Path | None = None

    def adapter(self, name: str) -> AdapterWebSocketSettings:
        return self.adapters.get(name, _DEFAULT_ADAPTER)

    def plugin(self, key: str) -> Any:
        return self.plugins[key]


_DEFAULT_ADAPTER = AdapterWebSocketSettings()
ADAPTER_KEYS = frozenset(f.name for f in attrs.fields(AdapterWebSocketSettings))


@attrs.frozen
class SettingsSchema:
    """What the installed plugins add: adapter names and each plugin's own settings class."""

    adapters: tuple[str, ...] = ()
    plugin_settings: Mapping[str, type[Any]] = attrs.Factory(dict)


@attrs.frozen
class Problem:
    severity: Literal["error", "warning", "info"]
    key: str
    message: str
    value: Any = None
    line: int | None = None
    has_value: bool = False

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        shown = f" = {_shown(self.value)}" if self.has_value else ""
        key = f"{self.key}{shown}: " if self.key else ""
        return f"{self.severity}: {where}{key}{self.message}"


def _shown(value: Any, limit: int = 60) -> str:
    """A value as JSON, credentials in URLs redacted, then cut short if long (a 4,000-digit
    number is not worth a screen). Redacting first: a cut URL could hide its `@` from it."""
    try:
        text = redact(json.dumps(value))
    except ValueError:  # an integer beyond the interpreter's digit limit
        text = f"<a {len(str(value)) if isinstance(value, int) else 'huge'}-digit number>"
    return text if len(text) <= limit else f"{text[: limit - 12]}… ({len(text)} chars)"


class SettingsError(Exception):
    """The settings file has errors; `problems` lists all of them (and the warnings)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        errors = [p for p in problems if p.severity == "error"]
        super().__init__("\n".join(str(p) for p in errors))


@attrs.frozen
class Loaded:
    settings: Settings
    problems: tuple[Problem, ...]
    values: Mapping[str, Any] = attrs.Factory(dict)
    """Every key as read (dotted, nested objects flattened), ours and the host's."""

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "warning")


# --- structuring ------------------------------------------------------------------------------


def _kind(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _structure_bool(value: Any, _t: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {_kind(value)}")
    return value


def _structure_int(value: Any, _t: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {_kind(value)}")
    return value


def _structure_float(value: Any, _t: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {_kind(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise ValueError("expected a finite number, got one too large for a float") from None
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {json.dumps(number)}")
    return number


def _structure_str(value: Any, _t: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {_kind(value)}")
    return value


def _structure_positive_float(value: Any, t: Any) -> PositiveFloat:
    number = _structure_float(value, t)
    if not number > 0:
        raise ValueError("expected a number greater than 0")
    return PositiveFloat(number)


def _structure_positive_int(value: Any, t: Any) -> PositiveInt:
    number = _structure_int(value, t)
    if number < 1:
        raise ValueError("expected an integer of at least 1")
    return PositiveInt(number)


def _structure_fraction(value: Any, t: Any) -> Fraction:
    number = _structure_float(value, t)
    if not 0.0 <= number <= 1.0:
        raise ValueError("expected a number from 0 to 1")
    return Fraction(number)


_SYMBOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def _structure_symbols(value: Any, _t: Any) -> Symbols:
    if not isinstance(value, list):
        raise TypeError(
            f'expected a list of symbols such as ["BTCUSDT", "ETHUSDT"], got {_kind(value)}'
        )
    bad = [s for s in value if not isinstance(s, str) or not _SYMBOL.match(s)]
    if bad:
        raise ValueError(
            f"expected symbols as non-empty strings of letters and digits, got {json.dumps(bad)}"
        )
    seen: dict[str, None] = {}
    for s in value:
        seen.setdefault(s.upper(), None)
    return Symbols(tuple(seen))


def _structure_shard(value: Any, t: Any) -> ShardText:
    text = _structure_str(value, t)
    try:
        shard = parse_shard(text)
    except ValueError:
        raise ValueError(f"expected a string {SHARD_FORM}") from None
    return ShardText(str(shard))


def _url_hook(schemes: tuple[str, ...]) -> Callable[[Any, Any], str]:
    def structure(value: Any, t: Any) -> str:
        text = _structure_str(value, t)
        parsed = urlsplit(text)
        if parsed.scheme not in schemes or not parsed.hostname:
            raise ValueError(
                f"expected a {' or '.join(s + '://' for s in schemes)} URL with a host"
            )
        return text.rstrip("/")

    return structure


def make_converter() -> cattrs.Converter:
    """A strict converter: no silent coercion ("yes" is not true, 1.5 is not an integer)."""
    conv = cattrs.Converter(detailed_validation=True, forbid_extra_keys=True)
    conv.register_structure_hook(bool, _structure_bool)
    conv.register_structure_hook(int, _structure_int)
    conv.register_structure_hook(float, _structure_float)
    conv.register_structure_hook(str, _structure_str)
    conv.register_structure_hook(PositiveFloat, _structure_positive_float)
    conv.register_structure_hook(PositiveInt, _structure_positive_int)
    conv.register_structure_hook(Fraction, _structure_fraction)
    conv.register_structure_hook(Symbols, _structure_symbols)
    conv.register_structure_hook(ShardText, _structure_shard)
    conv.register_structure_hook(WebSocketUrl, _url_hook(("ws", "wss")))
    conv.register_structure_hook(HttpUrl, _url_hook(("http", "https")))
    return conv


converter = make_converter()


def _error_message(exc: BaseException, _type: Any) -> str:
    if isinstance(exc, ForbiddenExtraKeysError):
        return f"unknown keys {sorted(exc.extra_fields)}"
    if isinstance(exc, TypeError | ValueError):
        return str(exc)
    return f"invalid value ({exc})"


def _structure(
    cls: type[Any], data: dict[str, Any], prefix: str
) -> tuple[Any | None, list[tuple[str, str]]]:
    """Structure `data` into `cls`; on failure, (None, [(dotted key, message), …])."""
    try:
        obj = converter.structure(data, cls)
    except ClassValidationError as exc:
        errors: list[tuple[str, str]] = []
        for text in cattrs.transform_error(exc, path="$", format_exception=_error_message):
            message, _, path = text.rpartition(" @ ")
            key = path.removeprefix("$").lstrip(".")
            key = re.sub(r"\[\d+\]$", "", key)
            errors.append((f"{prefix}.{key}" if key else prefix, message))
        return None, errors
    except (TypeError, ValueError) as exc:
        # attrs validators of a plugin's own settings class
        return None, [(prefix, str(exc))]
    errors = out_of_range(obj, prefix)
    return (None, errors) if errors else (obj, [])


def _range_text(t: Any, low: float, high: float) -> str:
    kind = "an integer" if t in (PositiveInt, int, "PositiveInt", "int") else "a number"
    return f"{kind} from {_number(low)} to {_number(high)}"


def _number(x: float) -> str:
    return f"{int(x):,}" if x == int(x) else f"{x:g}"


def out_of_range(obj: Any, prefix: str) -> list[tuple[str, str]]:
    """(dotted key, message) for every field of `obj` (an attrs settings object, nested ones
    included) outside the range `bounded` gave it."""
    errors: list[tuple[str, str]] = []
    for f in attrs.fields(type(obj)):
        value = getattr(obj, f.name)
        key = f"{prefix}.{f.name}"
        if attrs.has(type(value)):
            errors += out_of_range(value, key)
            continue
        bounds = f.metadata.get("range")
        if bounds is not None and not bounds[0] <= value <= bounds[1]:
            errors.append((key, f"expected {_range_text(f.type, *bounds)}"))
    return errors


# --- the loader -------------------------------------------------------------------------------


def settings_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """`--config`, else `$FOXTROT_SETTINGS`, else `./vt_setting.json`."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return Path(DEFAULT_FILE)


def _flatten(obj: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    # Nested objects are accepted as a convenience; the documented form is flat dotted keys.
    for key, value in obj.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _flatten(value, dotted + ".")
        else:
            yield dotted, value


def _resolve(cls: type[Any]) -> type[Any]:
    attrs.resolve_types(cls)
    for f in attrs.fields(cls):
        if isinstance(f.type, type) and attrs.has(f.type):
            _resolve(f.type)
    return cls


@attrs.frozen
class KeyDoc:
    key: str
    type: str
    default: Any
    doc: str


def _type_name(t: Any) -> str:
    return {
        PositiveFloat: "number > 0",
        PositiveInt: "integer ≥ 1",
        Fraction: "number 0 to 1",
        Symbols: "list of strings",
        ShardText: "string I/N",
        WebSocketUrl: "ws:// or wss:// URL",
        HttpUrl: "http:// or https:// URL",
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
    }.get(t, getattr(t, "__name__", str(t)))


def describe(cls: type[Any], prefix: str) -> list[KeyDoc]:
    """Every key of an attrs settings class with its type, default and documentation."""
    _resolve(cls)
    docs: list[KeyDoc] = []
    for f in attrs.fields(cls):
        key = f"{prefix}.{f.name}"
        if isinstance(f.type, type) and attrs.has(f.type):
            docs.extend(describe(f.type, key))
            continue
        default = f.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = default.factory()
        if isinstance(default, tuple):
            default = list(default)
        bounds = f.metadata.get("range")
        type_name = (
            _range_text(f.type, *bounds).removeprefix("an ").removeprefix("a ")
            if bounds is not None
            else _type_name(f.type)
        )
        docs.append(KeyDoc(key, type_name, default, f.metadata.get("doc", "")))
    return docs


def all_keys(schema: SettingsSchema) -> list[KeyDoc]:
    """Every key the installed plugins understand (adapters' keys spelt with their names)."""
    docs = [d for d in describe(WebSocketSettings, "websocket")]
    for adapter in schema.adapters:
        docs.extend(describe(AdapterWebSocketSettings, f"websocket.{adapter}"))
    for key, cls in sorted(schema.plugin_settings.items()):
        docs.extend(describe(cls, key))
    return docs


def load(
    path: str | os.PathLike[str] | None = None,
    schema: SettingsSchema | None = None,
    *,
    text: str | None = None,
) -> Loaded:
    """Read settings from `path` (or `text`), check every key, and report every problem.

    Raises `SettingsError` (with the warnings too) if there is any error, including a file
    that cannot be read or decoded. A missing file is all defaults, with one info line, when
    it is the implicit `./vt_setting.json`; a file named explicitly (`path`, or
    `$FOXTROT_SETTINGS`) must exist. A UTF-8 byte order mark is accepted.
    """
    schema = schema or SettingsSchema()
    explicit = bool(path) or bool(os.environ.get(ENV_VAR))
    file = settings_path(path) if text is None else (Path(path) if path else None)
    problems: list[Problem] = []
    if text is None:
        assert file is not None
        text = _read(file, schema, explicit)
        if text is None:
            return Loaded(_defaults(schema, file), ())
    text = text.removeprefix("\ufeff")

    def fail(message: str, line: int | None = None) -> SettingsError:
        return SettingsError([Problem("error", "", message, line=line)])

    if "\x00" in text:
        raise fail("not a settings file: it holds NUL characters (a binary file?)")
    try:
        stripped = strip_comments(text)
        pairs = json.loads(stripped, object_pairs_hook=_Pairs)
    except JsoncError as exc:
        raise fail(exc.msg, exc.line) from exc
    except json.JSONDecodeError as exc:
        raise fail(f"invalid JSON: {exc.msg} (column {exc.colno})", exc.lineno) from exc
    except RecursionError as exc:
        raise fail(f"nested too deeply (at most {MAX_DEPTH} levels)") from exc
    except ValueError as exc:  # e.g. an integer beyond the interpreter's digit limit
        raise fail(f"invalid JSON: {exc}") from exc
    if not isinstance(pairs, _Pairs):
        raise fail(f"expected a JSON object, got {_kind(pairs)}")
    if _depth(pairs) > MAX_DEPTH:
        raise fail(f"nested too deeply (at most {MAX_DEPTH} levels)")
    lines = key_lines(stripped)
    return _interpret(pairs, lines, schema, file, problems)


def _read(file: Path, schema: SettingsSchema, explicit: bool) -> str | None:
    """The file's text; None if the implicit default file does not exist."""
    try:
        data = file.read_bytes()
    except FileNotFoundError as exc:
        if explicit:
            raise SettingsError(
                [
                    Problem(
                        "error", "", f"no settings file at {file} (named by --config or ${ENV_VAR})"
                    )
                ]
            ) from exc
        log.info("no settings file at %s: using the defaults", file)
        return None
    except IsADirectoryError as exc:
        raise SettingsError([Problem("error", "", f"{file} is a directory, not a file")]) from exc
    except OSError as exc:
        raise SettingsError(
            [Problem("error", "", f"cannot read {file}: {exc.strerror or exc}")]
        ) from exc
    if len(data) > MAX_FILE_BYTES:
        raise SettingsError(
            [
                Problem(
                    "error",
                    "",
                    f"{file} is {len(data):,} bytes: not a settings file "
                    f"(at most {MAX_FILE_BYTES:,})",
                )
            ]
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SettingsError(
            [
                Problem(
                    "error",
                    "",
                    f"{file} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                    f"{exc.start}): save it as UTF-8",
                )
            ]
        ) from exc


STRICT_HOSTS_WHY = (
    "foxtrot-stream reads it, but Foxtrot and vnpy load vt_setting.json from their trader "
    "folder with Python's strict json.load and fail to start on it; keep the host's file "
    "strict JSON (docs/foxtrot-engine.md shows one)"
)


def strict_json_problems(file: Path) -> list[Problem]:
    """Why a settings file that foxtrot-stream accepted would break a host that reads strict
    JSON (comments, trailing commas, a byte order mark); [] when it would not, or when the
    file cannot be read (the loader reports that)."""
    try:
        data = file.read_bytes()
        text = data.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return []
    what = []
    if data.startswith(b"\xef\xbb\xbf"):
        what.append("it starts with a byte order mark")
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:  # (the loader accepted it: comments or commas)
        what.append(f"comments or trailing commas (line {exc.lineno}: {exc.msg})")
    except ValueError:  # an integer beyond the digit limit: the loader says so
        pass
    if not what:
        return []
    return [
        Problem(
            "warning", "", f"{file.name} is not strict JSON: {'; '.join(what)}. {STRICT_HOSTS_WHY}"
        )
    ]


def _depth(value: Any) -> int:
    """How deeply `value` nests objects and lists (iteratively: no recursion limit)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, _Pairs):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for _, v in item)
        elif isinstance(item, list):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in item)
    return deepest


class _Pairs(list[tuple[str, Any]]):
    """Keeps duplicate keys visible (json's dict would silently keep the last)."""


def _plain(value: Any) -> Any:
    if isinstance(value, _Pairs):
        return {k: _plain(v) for k, v in value}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _interpret(
    pairs: _Pairs,
    lines: Mapping[str, int],
    schema: SettingsSchema,
    file: Path | None,
    problems: list[Problem],
) -> Loaded:
    flat: dict[str, Any] = {}
    for key, value in pairs:
        plain = _plain(value)
        entries = _flatten({key: plain}) if isinstance(plain, dict) else [(key, plain)]
        for k, v in entries:
            if k in flat:
                problems.append(
                    Problem(
                        "warning", k, "set more than once; the last value wins", line=lines.get(k)
                    )
                )
            flat[k] = v

    known = {d.key: d for d in all_keys(schema)}
    own_prefixes = {"websocket", *schema.plugin_settings}
    global_data: dict[str, Any] = {}
    adapter_data: dict[str, dict[str, Any]] = {a: {} for a in schema.adapters}
    plugin_data: dict[str, dict[str, Any]] = {p: {} for p in schema.plugin_settings}

    def problem(severity: Literal["error", "warning", "info"], key: str, msg: str) -> None:
        problems.append(
            # a whole plugin's object refused by its own class (two keys that conflict): no
            # single value to show
            Problem(
                severity, key, msg, value=flat.get(key), line=lines.get(key), has_value=key in flat
            )
        )

    for key, value in flat.items():
        parts = key.split(".")
        head = parts[0]
        if key in known:
            if head == "websocket" and len(parts) == 3 and parts[1] in adapter_data:
                adapter_data[parts[1]][parts[2]] = value
            elif head == "websocket":
                _put(global_data, parts[1:], value)
            else:
                prefix = next(p for p in schema.plugin_settings if key.startswith(p + "."))
                _put(plugin_data[prefix], key[len(prefix) + 1 :].split("."), value)
            continue
        if head not in own_prefixes:
            close = difflib.get_close_matches(head, sorted(own_prefixes), n=1, cutoff=0.75)
            if close:
                problem("warning", key, f"unknown key; did you mean {close[0]}.…?")
            continue  # the host application's key
        if (
            head == "websocket"
            and len(parts) == 3
            and parts[1] not in GLOBAL_GROUPS
            and parts[1] not in adapter_data
            and parts[2] in ADAPTER_KEYS
            and not difflib.get_close_matches(parts[1], sorted(GLOBAL_GROUPS), n=1, cutoff=0.8)
            and not difflib.get_close_matches(parts[1], sorted(adapter_data), n=1, cutoff=0.8)
        ):
            installed = ", ".join(sorted(adapter_data)) or "none"
            problem(
                "error",
                key,
                f"no adapter named {parts[1]!r} is installed (installed adapters: {installed}); "
                "install its plugin or remove the key",
            )
            continue
        suggestion = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
        hint = f"; did you mean {suggestion[0]}?" if suggestion else ""
        problem("warning", key, f"unknown key, ignored{hint}")

    errors: list[tuple[str, str]] = []
    websocket, errs = _structure(WebSocketSettings, global_data, "websocket")
    errors += errs
    if websocket is not None and websocket.reconnect.max_delay < websocket.reconnect.base_delay:
        errors.append(
            (
                "websocket.reconnect.max_delay",
                f"expected at least websocket.reconnect.base_delay "
                f"({websocket.reconnect.base_delay})",
            )
        )
    adapters: dict[str, AdapterWebSocketSettings] = {}
    for name, data in adapter_data.items():
        obj, errs = _structure(AdapterWebSocketSettings, data, f"websocket.{name}")
        errors += errs
        if obj is not None:
            adapters[name] = obj
            raw = data.get("symbols")
            if isinstance(raw, list) and any(s != s.upper() for s in raw):
                problem(
                    "info",
                    f"websocket.{name}.symbols",
                    f"symbols are upper case; using {json.dumps(list(obj.symbols))}",
                )
    plugins: dict[str, Any] = {}
    for prefix, cls in schema.plugin_settings.items():
        obj, errs = _structure(cls, plugin_data[prefix], prefix)
        errors += errs
        plugins[prefix] = obj
    for key, message in errors:
        problem("error", key, message)
    for prefix, obj in plugins.items():
        for field, url in insecure_urls(obj):
            problem(
                "warning", f"{prefix}.{field}", f"{redact(url)} is not encrypted: {INSECURE_HINT}"
            )

    problems.sort(key=lambda p: (p.line or 0, p.key))
    if any(p.severity == "error" for p in problems):
        raise SettingsError(problems)
    assert websocket is not None
    origin = {k: "file" for k in flat if k in known}
    settings = Settings(websocket, adapters, plugins, origin, file)
    return Loaded(settings, tuple(problems), flat)


LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
INSECURE_HINT = "use wss:// or https:// for anything but a local simulator"


def insecure_urls(obj: Any) -> list[tuple[str, str]]:
    """(field, url) for each plain ws:// or http:// URL of a settings object that leaves this
    machine. Certificates are always verified on wss:// and https://; plain URLs are allowed
    (testnets, simulators) but should be loopback."""
    if obj is None or not attrs.has(type(obj)):
        return []
    found = []
    for f in attrs.fields(type(obj)):
        value = getattr(obj, f.name)
        if f.type in (WebSocketUrl, HttpUrl, "WebSocketUrl", "HttpUrl") and isinstance(value, str):
            parts = urlsplit(value)
            host = parts.hostname or ""
            if parts.scheme in ("ws", "http") and not (
                host in LOOPBACK_HOSTS or host.startswith("127.")
            ):
                found.append((f.name, value))
    return found


def _put(tree: dict[str, Any], parts: list[str], value: Any) -> None:
    for part in parts[:-1]:
        tree = tree.setdefault(part, {})
    tree[parts[-1]] = value


def _defaults(schema: SettingsSchema, file: Path | None) -> Settings:
    return Settings(
        WebSocketSettings(),
        {a: AdapterWebSocketSettings() for a in schema.adapters},
        {p: converter.structure({}, cls) for p, cls in schema.plugin_settings.items()},
        {},
        file,
    )


def defaults(schema: SettingsSchema | None = None) -> Settings:
    """All defaults for the given plugins (what a missing settings file gives)."""
    return _defaults(schema or SettingsSchema(), None)


def effective(settings: Settings, schema: SettingsSchema) -> list[tuple[str, Any, str]]:
    """(key, value, "file" | "default") for every known key: what `config show` prints."""
    out: list[tuple[str, Any, str]] = []
    for doc in all_keys(schema):
        value = _lookup(settings, doc.key, schema)
        if isinstance(value, tuple):
            value = list(value)
        out.append((doc.key, value, settings.origin.get(doc.key, "default")))
    return out


def _lookup(settings: Settings, key: str, schema: SettingsSchema) -> Any:
    parts = key.split(".")
    obj: Any
    if parts[0] == "websocket" and len(parts) == 3 and parts[1] in schema.adapters:
        obj = settings.adapter(parts[1])
        parts = parts[2:]
    elif parts[0] == "websocket":
        obj = settings.websocket
        parts = parts[1:]
    else:
        prefix = next(p for p in schema.plugin_settings if key.startswith(p + "."))
        obj = settings.plugin(prefix)
        parts = key[len(prefix) + 1 :].split(".")
    for part in parts:
        obj = getattr(obj, part)
    return obj
