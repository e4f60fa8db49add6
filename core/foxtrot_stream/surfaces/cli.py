"""The `foxtrot-stream` command.

Exit codes: 0 success; 1 `config check` found warnings only; 2 bad settings, bad arguments or
a needed plugin that cannot load (a message, never a traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import sys
from collections.abc import Coroutine, Sequence
from typing import Any, NoReturn

import attrs

from foxtrot_stream import __version__
from foxtrot_stream.config.settings import (
    DEFAULT_FILE,
    Loaded,
    Settings,
    SettingsError,
    effective,
    load,
    settings_path,
    strict_json_problems,
)
from foxtrot_stream.contract.plugins import PluginHost, PluginLoadError
from foxtrot_stream.contract.records import SourceRequest
from foxtrot_stream.surfaces import demo, runner, tail
from foxtrot_stream.surfaces.serve import (
    DEFAULT_MAX_CONNECTIONS,
    ServeAddressError,
    ServeOptions,
    parse_address,
)
from foxtrot_stream.util.eventloop import CHOICES as LOOP_CHOICES
from foxtrot_stream.util.eventloop import ENV_VAR as LOOP_ENV_VAR
from foxtrot_stream.util.eventloop import LoopChoiceError, LoopKind, choose
from foxtrot_stream.util.redact import redact
from foxtrot_stream.util.shard import parse_shard

EXIT_WARNINGS = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # `--shard -1/4` is a bad value to name, not an unknown option
        self._negative_number_matcher = re.compile(r"^-\d+$|^-\d*\.\d+$|^-\d+/\d+$")

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="foxtrot-stream",
        description="Real-time exchange market data with WebSocket streaming and HTTP fallback.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("plugins", help="list installed plugins, what they provide, enabled or not")
    p.add_argument("--config", help="settings file (default: $FOXTROT_SETTINGS or vt_setting.json)")
    _loop_option(p)

    config = sub.add_parser("config", help="check or show the settings")
    csub = config.add_subparsers(dest="config_command", required=True, parser_class=_Parser)
    c = csub.add_parser(
        "check", help="validate a settings file: exit 0 clean, 1 warnings, 2 errors"
    )
    c.add_argument("file", nargs="?")
    c.add_argument(
        "--strict",
        action="store_true",
        help="also warn where a host that reads strict JSON would fail (comments, trailing "
        "commas, a byte order mark); always on for a file named vt_setting.json",
    )
    c = csub.add_parser("show", help="effective settings, each marked default or file")
    c.add_argument("file", nargs="?")
    c.add_argument("--json", action="store_true", help="print as a JSON object")

    r = sub.add_parser("run", help="stream symbols (the main job)")
    r.add_argument("--config", help="settings file (default: $FOXTROT_SETTINGS or vt_setting.json)")
    r.add_argument(
        "--adapter",
        nargs="+",
        default=["binance"],
        metavar="A",
        help="adapter(s) to stream from (default binance); several stream side by side, each "
        "failing over on its own",
    )
    which = r.add_mutually_exclusive_group()
    which.add_argument(
        "--symbols",
        nargs="+",
        metavar="S",
        help="symbols (default: the settings'); with several adapters, name each one's "
        "adapter: okx:BTC-USDT binance:BTCUSDT",
    )
    which.add_argument(
        "--all",
        action="store_true",
        dest="all_symbols",
        help="every symbol the exchange lists as trading (sharded over connections as its "
        "limits require)",
    )
    r.add_argument(
        "--shard",
        type=_shard,
        metavar="I/N",
        help="stream only the symbols of shard I of N (a stable hash of each symbol), named "
        "or found by --all: run one process per shard, each twice for redundancy (default: "
        "websocket.<adapter>.shard, 0/1 = every symbol)",
    )
    r.add_argument("--duration", type=_positive, help="stop after this many seconds")
    r.add_argument("--format", choices=("table", "jsonl"), default="table", dest="fmt")
    r.add_argument("--serve", type=_address, metavar="HOST:PORT", help=SERVE_HELP)
    r.add_argument(
        "--sink",
        action="append",
        default=[],
        metavar="URL",
        help="also publish every tick to this sink (e.g. redis://127.0.0.1:6379/0: the "
        "installed sink plugin for the URL's scheme; repeatable)",
    )
    _serve_options(r)
    _loop_option(r)

    d = sub.add_parser(
        "demo",
        help="the guide's configuration against the bundled simulator, with a scripted outage",
    )
    d.add_argument("--adapter", default="binance")
    d.add_argument("--duration", type=_positive, default=60.0, help="seconds (default 60)")
    d.add_argument(
        "--format",
        choices=("table", "log"),
        dest="fmt",
        help="live table (default on a terminal) or plain lines",
    )
    d.add_argument("--serve", type=_address, metavar="HOST:PORT", help=SERVE_HELP)
    _serve_options(d)
    _loop_option(d)

    sim = sub.add_parser(
        "simulate",
        help="run an exchange simulator on 127.0.0.1 (e.g. `simulate binance --port 9443`)",
        add_help=False,
    )
    sim.add_argument("adapter")
    sim.add_argument("args", nargs=argparse.REMAINDER)
    _tail_parser(sub)
    return parser


def _tail_parser(sub: Any) -> None:
    t = sub.add_parser(
        "tail",
        help="print the ticks a source holds (e.g. the Redis streams a sink wrote), as `run` "
        "prints them",
    )
    t.add_argument("url", help="the source, by its URL's scheme (redis://HOST:PORT/DB)")
    t.add_argument("--symbols", nargs="+", required=True, metavar="S")
    t.add_argument("--adapter", default="binance", help="whose ticks (default binance)")
    t.add_argument("--format", choices=("table", "jsonl"), default="table", dest="fmt")
    t.add_argument(
        "--from",
        dest="start",
        choices=("now", "oldest"),
        help="on a stream not read before: new entries only, or every entry it still holds "
        "(default: the settings', now)",
    )
    t.add_argument(
        "--group",
        metavar="NAME",
        help="read in this consumer group: the readers of a group share the entries",
    )
    t.add_argument("--consumer", metavar="NAME", help="this reader's name in --group")
    t.add_argument("--duration", type=_positive, help="stop after this many seconds")
    t.add_argument("--config", help="settings file (default: $FOXTROT_SETTINGS or vt_setting.json)")
    _loop_option(t)


SERVE_HELP = (
    "serve /metrics (Prometheus), /status (JSON) and a live status page; HOST defaults to "
    "127.0.0.1 (e.g. --serve 8765 or --serve 127.0.0.1:8765)"
)


def _loop_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--loop",
        choices=LOOP_CHOICES,
        help=f"event loop: uvloop when installed (foxtrot-stream[fast]) or asyncio's; auto "
        f"(the default, or ${LOOP_ENV_VAR}) takes uvloop if it imports",
    )


def _run_on_loop(kind: LoopKind, main: Coroutine[Any, Any, int]) -> int:
    logging.getLogger("foxtrot_stream").info("event loop: %s", kind.name)
    with asyncio.Runner(loop_factory=kind.factory) as loop_runner:
        return loop_runner.run(main)


def _serve_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--serve-allow-host",
        action="append",
        type=_host_name,
        default=[],
        metavar="NAME[:PORT]",
        help="a further name the status server answers to in the Host header (repeatable; "
        "the bound address, and localhost when bound to loopback, always are)",
    )
    p.add_argument(
        "--serve-max-connections",
        type=_count,
        default=DEFAULT_MAX_CONNECTIONS,
        metavar="N",
        help=f"connections the status server keeps open at once; more are refused "
        f"(default {DEFAULT_MAX_CONNECTIONS})",
    )


def serve_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> ServeOptions | None:
    if args.serve is None:
        if args.serve_allow_host or args.serve_max_connections != DEFAULT_MAX_CONNECTIONS:
            parser.error("--serve-allow-host and --serve-max-connections need --serve")
        return None
    return ServeOptions(
        allowed_hosts=tuple(args.serve_allow_host), max_connections=args.serve_max_connections
    )


def _host_name(text: str) -> str:
    try:
        ServeOptions(allowed_hosts=(text,))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def _address(text: str) -> tuple[str, int]:
    try:
        return parse_address(text)
    except ServeAddressError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _shard(text: str) -> str:
    try:
        return str(parse_shard(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(name)s: %(message)s",
    )


def _load(host: PluginHost, path: str | None) -> Loaded:
    return load(path, host.schema())


def _print_problems(loaded_or_error: Loaded | SettingsError) -> None:
    for problem in loaded_or_error.problems:
        print(str(problem), file=sys.stderr)


def cmd_plugins(host: PluginHost, args: argparse.Namespace) -> int:
    loaded = _load(host, args.config)
    _print_problems(loaded)
    settings = loaded.settings
    for plugin in sorted(host.plugins, key=lambda p: p.origin.entry_point):
        o = plugin.origin
        print(f"{o.entry_point}  ({o.distribution} {o.version}, {o.value})")
        for name in plugin.adapters:
            spec = host.adapters[name]
            per = settings.adapter(name)
            if not settings.websocket.enabled:
                state = "enabled, HTTP polling only (websocket.enabled is false)"
            elif not per.enabled:
                state = f"enabled, HTTP polling only (websocket.{name}.enabled is false)"
            else:
                which = ", ".join(per.symbols) if per.symbols else "all symbols"
                state = f"enabled, WebSocket for {which}"
            print(f"  adapter   {name} ({spec.display_name}): {state}")
        for name in plugin.transports:
            print(f"  transport {name}: {host.transports[name].description}")
        for name in plugin.policies:
            in_use = " (in use)" if name == settings.websocket.policy else ""
            print(f"  policy    {name}{in_use}: {host.policies[name].description}")
        for name in plugin.sinks:
            sink = host.sinks[name]
            on = getattr(settings.plugins.get(sink.key), "enabled", False) is True
            state = "enabled" if on else f"off ({sink.key}.enabled is false)"
            print(f"  sink      {name}: {state}: {sink.description}")
        for name in plugin.sources:
            source = host.sources[name]
            on = getattr(settings.plugins.get(source.key), "consume", False) is True
            state = "hosts consume it" if on else "for tail"
            if source.settings_cls is not None and not on:
                state += f" (hosts: {source.key}.consume is false)"
            schemes = ", ".join(f"{x}://" for x in source.schemes)
            print(f"  source    {name} ({schemes}): {state}: {source.description}")
        if plugin.hooks:
            print(f"  hooks     {', '.join(plugin.hooks)}")
    for problem in host.problems:
        print(f"skipped: {problem}")
    print(f"event loop: {args.loop_kind.name} (--loop {args.loop_kind.asked})")
    return 0


def cmd_config_check(host: PluginHost, args: argparse.Namespace) -> int:
    path = settings_path(args.file)
    loaded = _load(host, args.file)
    _print_problems(loaded)
    host.check_required(loaded.settings)
    strict = strict_json_problems(path) if args.strict or path.name == DEFAULT_FILE else []
    for problem in strict:
        print(str(problem), file=sys.stderr)
    warnings = len(loaded.warnings) + len(strict)
    if warnings:
        print(f"{path}: {warnings} warning(s), no errors")
        return EXIT_WARNINGS
    print(f"{path}: OK")
    return 0


def cmd_config_show(host: PluginHost, args: argparse.Namespace) -> int:
    loaded = _load(host, args.file)
    _print_problems(loaded)
    rows = effective(loaded.settings, host.schema())
    if args.json:
        out: dict[str, Any] = {
            k: {"value": redact(v) if isinstance(v, str) else v, "source": src}
            for k, v, src in rows
        }
        print(json.dumps(out, indent=2))
        return 0
    width = max(len(k) for k, _, _ in rows)
    for key, value, source in rows:
        print(f"{key:<{width}}  {redact(json.dumps(value)):<32} {source}")
    return 0


def cmd_run(host: PluginHost, args: argparse.Namespace) -> int:
    loaded = _load(host, args.config)
    _print_problems(loaded)
    settings = loaded.settings
    adapters = list(dict.fromkeys(a.lower() for a in args.adapter))
    for adapter in adapters:
        if adapter not in host.adapters:
            installed = ", ".join(sorted(host.adapters)) or "none"
            print(
                f"foxtrot-stream: --adapter {adapter}: not installed (installed: {installed})",
                file=sys.stderr,
            )
            return EXIT_USAGE
    host.check_required(settings, adapters)
    plan = symbol_plan(adapters, args.symbols or [])
    if isinstance(plan, str):
        print(f"foxtrot-stream: {plan}", file=sys.stderr)
        return EXIT_USAGE
    for url in args.sink:
        spec = host.sink_for_url(url)
        if spec is None:
            schemes = sorted(x for k in host.sinks.values() for x in k.schemes)
            print(
                f"foxtrot-stream: --sink {redact(url)}: no installed sink takes this URL "
                f"(schemes installed: {', '.join(schemes) or 'none'})",
                file=sys.stderr,
            )
            return EXIT_USAGE
        try:
            own = attrs.evolve(settings.plugins[spec.key], enabled=True, url=url)
        except ValueError as exc:  # the sink's settings refuse it (redis.consume is true)
            print(f"foxtrot-stream: --sink {redact(url)}: {redact(str(exc))}", file=sys.stderr)
            return EXIT_USAGE
        settings = attrs.evolve(settings, plugins={**settings.plugins, spec.key: own})
    if args.shard is not None:
        sharded = {a: attrs.evolve(settings.adapter(a), shard=args.shard) for a in adapters}
        settings = attrs.evolve(settings, adapters={**settings.adapters, **sharded})
    for adapter in adapters:
        plan[adapter] = plan[adapter] or list(settings.adapter(adapter).symbols)
        if not plan[adapter] and not args.all_symbols:
            example, source = "BTCUSDT ETHUSDT", ""
            if len(adapters) > 1:
                example, source = f"{adapter}:SYMBOL", f" from {adapter}"
            print(
                f"foxtrot-stream: no symbols to stream{source}: name them (--symbols "
                f'{example}), set "websocket.{adapter}.symbols" in '
                f"{settings_path(args.config)}, or stream every symbol the exchange lists with "
                "--all",
                file=sys.stderr,
            )
            return EXIT_USAGE
        http_only = _http_only(settings, adapter)
        if http_only:
            print(
                f"foxtrot-stream: {http_only} is false: polling over HTTP every "
                f"{_poll_interval(settings):g}s, no WebSocket; set "
                f'"{http_only}": true in {settings_path(args.config)} to stream',
                file=sys.stderr,
            )
    return _run_on_loop(
        args.loop_kind,
        runner.run(
            host,
            settings,
            plan,
            all_symbols=args.all_symbols,
            duration=args.duration,
            fmt=args.fmt,
            serve=args.serve,
            serve_options=args.serve_options,
        ),
    )


def symbol_plan(adapters: list[str], symbols: list[str]) -> dict[str, list[str]] | str:
    """adapter → the `--symbols` that are its (upper case), or what is wrong with them.

    A symbol may name its adapter, `okx:BTC-USDT` (symbols never contain `:`); one that does
    not belongs to the only adapter, and is ambiguous when several are streamed. An adapter
    none of them names streams its settings' symbols (`websocket.<adapter>.symbols`)."""
    plan: dict[str, list[str]] = {a: [] for a in adapters}
    for text in symbols:
        adapter, qualified, symbol = text.rpartition(":")
        if not qualified:
            if len(adapters) > 1:
                return (
                    f"--symbols {text}: name its adapter ({adapters[0]}:{text} …) when "
                    f"streaming from {' and '.join(adapters)}"
                )
            adapter = adapters[0]
        if adapter.lower() not in plan:
            return f"--symbols {text}: {adapter} is not among --adapter {' '.join(adapters)}"
        plan[adapter.lower()].append(symbol.upper())
    return plan


def _http_only(settings: Settings, adapter: str) -> str:
    """The key that keeps `adapter` off the WebSocket, if one does ("" if none)."""
    if not settings.websocket.enabled:
        return "websocket.enabled"
    if not settings.adapter(adapter).enabled:
        return f"websocket.{adapter}.enabled"
    return ""


def _poll_interval(settings: Settings) -> float:
    fallback = settings.plugins.get("http_fallback")
    return float(getattr(fallback, "interval", 1.0))


def cmd_demo(host: PluginHost, args: argparse.Namespace) -> int:
    table = args.fmt == "table" or (args.fmt is None and sys.stdout.isatty())
    return _run_on_loop(
        args.loop_kind,
        demo.run_demo(
            host,
            adapter=args.adapter,
            duration=args.duration,
            table=table,
            serve=args.serve,
            serve_options=args.serve_options,
        ),
    )


def cmd_simulate(host: PluginHost, args: argparse.Namespace) -> int:
    spec = host.adapters.get(args.adapter)
    if spec is None or spec.simulator is None:
        have = sorted(a for a, s in host.adapters.items() if s.simulator) or ["none"]
        print(
            f"foxtrot-stream: no simulator for adapter {args.adapter!r} "
            f"(available: {', '.join(have)})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return spec.simulator.main(list(args.args))


def cmd_tail(host: PluginHost, args: argparse.Namespace) -> int:
    url = args.url
    spec = host.source_for_url(url)
    if spec is None:
        schemes = sorted(x for s in host.sources.values() for x in s.schemes)
        hint = "; ".join(str(p) for p in host.problems)
        print(
            f"foxtrot-stream: tail {redact(url)}: no installed source takes this URL (schemes "
            f"installed: {', '.join(schemes) or 'none'}; for redis://, install "
            f"foxtrot-stream-redis){f'; {hint}' if hint else ''}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.consumer and not args.group:
        print("foxtrot-stream: tail: --consumer names a reader of a --group", file=sys.stderr)
        return EXIT_USAGE
    loaded = _load(host, args.config)
    _print_problems(loaded)
    request = SourceRequest(
        args.adapter.lower(),
        tuple(dict.fromkeys(s.upper() for s in args.symbols)),
        url=url,
        start=args.start,
        group=args.group,
        consumer=args.consumer,
    )
    return _run_on_loop(
        args.loop_kind,
        tail.tail(host, loaded.settings, spec, request, fmt=args.fmt, duration=args.duration),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("run", "demo"):
        args.serve_options = serve_options(parser, args)
    if args.command in ("run", "demo", "plugins", "tail"):
        try:
            args.loop_kind = choose(args.loop)
        except LoopChoiceError as exc:
            parser.error(str(exc))
    _setup_logging(args.verbose)
    host = PluginHost.discover()
    commands = {
        "plugins": cmd_plugins,
        "run": cmd_run,
        "demo": cmd_demo,
        "simulate": cmd_simulate,
        "tail": cmd_tail,
    }
    try:
        if args.command == "config":
            if args.config_command == "check":
                return cmd_config_check(host, args)
            return cmd_config_show(host, args)
        return commands[args.command](host, args)
    except SettingsError as exc:
        _print_problems(exc)
        errors = sum(p.severity == "error" for p in exc.problems)
        print(f"foxtrot-stream: {errors} error(s) in the settings", file=sys.stderr)
        return EXIT_USAGE
    except PluginLoadError as exc:
        print(f"foxtrot-stream: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
