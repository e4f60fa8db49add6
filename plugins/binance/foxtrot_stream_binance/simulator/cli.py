"""`foxtrot-stream simulate binance`: run the simulator on 127.0.0.1 from the command line.

Faults are scripted with `--fault KIND@AT[:ARG[:EXTRA]]`, AT in seconds from start:

  drop@AT                    drop every connection (no close handshake)
  refuse@AT:SECONDS          answer upgrades with HTTP 503 for SECONDS
  stall@AT:SECONDS           connections open, but no data, pings, pongs or answers
  silence@AT:SECONDS[:SYMS]  no data (for SYMS, comma-separated, or all); pings go on
  malformed@AT:COUNT         COUNT bad frames to every connection
  flap@AT:SECONDS[:UP]       for SECONDS, accept each connection, send one frame (or
                             stream UP seconds), then drop it (no close handshake)
  slowhandshake@AT:SECONDS[:DELAY]
                             hold each WebSocket upgrade DELAY seconds before its 101
                             answer (default: to the window's end), for SECONDS
  shutdown@AT[:GRACE]        send serverShutdown, close GRACE seconds later
  lifetime@AT                close every connection as the 24-hour cut does
  rest<STATUS>@AT:COUNT[:RETRY_AFTER]
                             answer COUNT REST requests with STATUS (429, 418, 500, 503 …)
  slowrest@AT:SECONDS[:DELAY]
                             hold REST answers DELAY seconds (default: to the window's end)
  outage@AT:SECONDS          drop everything and refuse upgrades for SECONDS
  refusesub@AT:SECONDS:SYMS  for SECONDS, answer a SUBSCRIBE naming streams of SYMS
                             (comma-separated) with an error, leave them out of URLs
  resetids@AT:SYMBOL         restart SYMBOL's update and trade ids near 1 (prices go on)
  jumpids@AT:SYMBOL[:BY]     one bookTicker of SYMBOL with its update id BY (default 1e9)
                             too high; the ids after it go on from where they were
  clear@AT                   end every fault

e.g. `--fault drop@10 refuse@5:10 stall@20:5 silence@8:4:BTCUSDT rest429@15:3`.
A missing SECONDS means 10, a missing COUNT 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import signal
import sys
import time

import attrs

from foxtrot_stream_binance.simulator.app import Simulator
from foxtrot_stream_binance.simulator.config import SimulatorConfig

_NUMBER = re.compile(r"^\d+(?:\.\d+)?$")
_SPEC = re.compile(
    r"^(?P<kind>[a-z]+|rest\d{3})@(?P<at>\d+(?:\.\d+)?)"
    r"(?::(?P<arg>\d+(?:\.\d+)?))?(?::(?P<extra>[A-Za-z0-9.,]+))?$"
)
_NUMERIC_EXTRA = ("slowrest", "slowhandshake", "flap")
_SYMBOL_SPEC = re.compile(
    r"^(?P<kind>[a-z]+)@(?P<at>\d+(?:\.\d+)?):(?P<symbol>[A-Za-z0-9]{2,20})(?::(?P<by>\d+))?$"
)
_SYMBOL_FORMS = {"resetids": "resetids@AT:SYMBOL", "jumpids": "jumpids@AT:SYMBOL[:BY]"}
"""Kinds whose first field is a symbol rather than a number."""
KINDS = (
    "drop",
    "refuse",
    "stall",
    "silence",
    "malformed",
    "flap",
    "slowhandshake",
    "shutdown",
    "lifetime",
    "slowrest",
    "outage",
    "refusesub",
    "resetids",
    "jumpids",
    "clear",
)


@attrs.frozen
class FaultSpec:
    kind: str
    at: float
    arg: float | None = None
    extra: str | None = None
    symbol: str | None = None
    """The symbol of `resetids` and `jumpids` (their first field)."""

    def __str__(self) -> str:
        fields = [f"{self.kind}@{self.at:g}"]
        if self.symbol is not None:
            fields.append(self.symbol)
        if self.arg is not None:
            fields.append(f"{self.arg:g}")
        if self.extra is not None:
            fields.append(self.extra)
        return ":".join(fields)

    def apply(self, sim: Simulator) -> None:
        seconds = self.arg if self.arg is not None else 10.0
        count = int(self.arg) if self.arg is not None else 1
        kind = self.kind
        if kind == "drop":
            sim.drop_all()
        elif kind == "refuse":
            sim.refuse_upgrades(seconds)
        elif kind == "stall":
            sim.stall(seconds)
        elif kind == "silence":
            sim.silence(seconds, self.extra.split(",") if self.extra else None)
        elif kind == "malformed":
            sim.malformed(count)
        elif kind == "flap":
            sim.flap(seconds, float(self.extra) if self.extra else 0.0)
        elif kind == "slowhandshake":
            sim.slow_handshake(seconds, float(self.extra) if self.extra else None)
        elif kind == "shutdown":
            sim.server_shutdown(self.arg)
        elif kind == "lifetime":
            sim.cut_lifetime()
        elif kind == "slowrest":
            sim.slow_rest(seconds, float(self.extra) if self.extra else None)
        elif kind == "outage":
            sim.outage(seconds)
        elif kind == "refusesub":
            sim.refuse_subscriptions(seconds, str(self.extra).split(","))
        elif kind == "resetids":
            sim.reset_ids(str(self.symbol))
        elif kind == "jumpids":
            if self.extra is None:
                sim.jump_ids(str(self.symbol))
            else:
                sim.jump_ids(str(self.symbol), int(self.extra))
        elif kind == "clear":
            sim.clear()
        else:  # restNNN
            retry = float(self.extra) if self.extra else 1.0
            sim.rest_errors(int(kind[4:]), count, retry)


def parse_fault(text: str) -> FaultSpec:
    form = _SYMBOL_FORMS.get(text.partition("@")[0])
    if form is not None:
        return _symbol_fault(text, form)
    m = _SPEC.match(text)
    kind = m["kind"] if m else ""
    status = kind[4:] if kind.startswith("rest") else ""
    if m is None or not (kind in KINDS or (status and 400 <= int(status) <= 599)):
        raise argparse.ArgumentTypeError(
            f"expected KIND@AT[:ARG[:EXTRA]] with KIND one of {', '.join(KINDS)} or rest<STATUS>, "
            f"got {text!r}"
        )
    extra = m["extra"]
    if kind == "refusesub" and not (extra and all(extra.split(","))):
        raise argparse.ArgumentTypeError(
            f"expected refusesub@AT:SECONDS:SYMBOL[,SYMBOL...], got {text!r}"
        )
    if extra is not None and (kind in _NUMERIC_EXTRA or status) and not _NUMBER.match(extra):
        raise argparse.ArgumentTypeError(f"the last field of {text!r} must be a number")
    return FaultSpec(kind, float(m["at"]), float(m["arg"]) if m["arg"] else None, extra)


def _symbol_fault(text: str, form: str) -> FaultSpec:
    m = _SYMBOL_SPEC.match(text)
    if m is None or (m["by"] is not None and m["kind"] == "resetids"):
        raise argparse.ArgumentTypeError(f"expected {form}, got {text!r}")
    if m["by"] is not None and int(m["by"]) < 1:
        raise argparse.ArgumentTypeError(f"BY must be >= 1 in {text!r}")
    return FaultSpec(m["kind"], float(m["at"]), extra=m["by"], symbol=m["symbol"].upper())


def _symbol_rate(text: str) -> tuple[str, float]:
    symbol, _, rate = text.partition("=")
    try:
        return symbol.upper(), float(rate)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SYMBOL=RATE, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="foxtrot-stream simulate binance",
        description="A Binance-Spot-compatible market-data server on 127.0.0.1 (only).",
        epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--port", type=int, default=9443, help="TCP port (0: any free port)")
    p.add_argument("--symbols", nargs="+", default=["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT"])
    p.add_argument("--synthetic", type=int, default=0, help="add N synthetic symbols")
    p.add_argument("--rate", type=float, default=10.0, help="book updates/s per symbol")
    p.add_argument(
        "--symbol-rate",
        type=_symbol_rate,
        action="append",
        default=[],
        metavar="SYMBOL=RATE",
        help="one symbol's rate (0: silent)",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--ping-interval", type=float, default=20.0)
    p.add_argument("--pong-timeout", type=float, default=60.0)
    p.add_argument("--lifetime", type=float, default=24 * 3600.0, help="connection lifetime (s)")
    p.add_argument("--weight-limit", type=int, default=6000, help="REST weight per minute")
    p.add_argument("--shutdown-grace", type=float, default=1.0)
    p.add_argument(
        "--clock-offset",
        type=float,
        default=0.0,
        help="seconds the simulated exchange clock runs ahead (negative: behind)",
    )
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument(
        "--fault", type=parse_fault, nargs="+", action="extend", default=[], metavar="SPEC"
    )
    return p


def config_from(args: argparse.Namespace) -> SimulatorConfig:
    return SimulatorConfig(
        symbols=tuple(args.symbols),
        synthetic=args.synthetic,
        rate=args.rate,
        rates=dict(args.symbol_rate),
        seed=args.seed,
        port=args.port,
        ping_interval=args.ping_interval,
        pong_timeout=args.pong_timeout,
        lifetime=args.lifetime,
        weight_limit=args.weight_limit,
        shutdown_grace=args.shutdown_grace,
        clock_offset=args.clock_offset,
    )


async def serve(args: argparse.Namespace) -> int:
    try:
        config = config_from(args)
    except ValueError as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 2
    listed = set(config.all_symbols())
    unlisted = [str(f) for f in args.fault if f.symbol is not None and f.symbol not in listed]
    if unlisted:
        print(f"simulate: faults name symbols not listed: {', '.join(unlisted)}", file=sys.stderr)
        return 2
    sim = Simulator(config)
    try:
        await sim.start()
    except OSError as exc:
        print(f"simulate: cannot listen on 127.0.0.1:{args.port}: {exc}", file=sys.stderr)
        return 2
    started = time.monotonic()
    n = len(config.all_symbols())
    print(
        f"simulate: Binance simulator: ws {sim.ws_url} rest {sim.rest_url} "
        f"({n} symbols at {args.rate:g}/s)",
        file=sys.stderr,
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            signals.append(sig)

    def fire(spec: FaultSpec) -> None:
        print(f"simulate: [{time.monotonic() - started:6.1f}s] fault {spec}", file=sys.stderr)
        try:
            spec.apply(sim)
        except (ValueError, RuntimeError) as exc:
            print(f"simulate: fault {spec} failed: {exc}", file=sys.stderr)

    timers = [loop.call_later(spec.at, fire, spec) for spec in args.fault]
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(args.duration):
                await stop.wait()
    finally:
        for timer in timers:
            timer.cancel()
        for sig in signals:
            loop.remove_signal_handler(sig)
        await sim.stop()
    return 0


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    return asyncio.run(serve(args))
