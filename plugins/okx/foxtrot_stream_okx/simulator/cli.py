"""`foxtrot-stream simulate okx`: the OKX simulator on 127.0.0.1 from the command line.

Faults are scripted with `--fault KIND@AT[:ARG[:EXTRA]]`, AT in seconds from start:

  drop@AT                    drop every connection (no close handshake)
  refuse@AT:SECONDS          answer WebSocket upgrades with HTTP 503
  stall@AT:SECONDS           connections open, but no data, pongs or answers
  silence@AT:SECONDS[:SYMS]  no data (for SYMS, comma-separated, or all); pongs go on
  garbage@AT:COUNT           COUNT malformed frames to every connection
  rest<STATUS>@AT:COUNT      answer COUNT REST requests with STATUS (429: code 50011)
  flap@AT:SECONDS[:UP]       accept each connection, one frame (or UP seconds), then drop
  notice@AT[:GRACE]          the 64008 service-upgrade notice, connections dropped GRACE later
  outage@AT:SECONDS          drop every connection and refuse upgrades for SECONDS
  refusesub@AT:SYMS          refuse subscriptions of SYMS (comma-separated) from then on
  clear@AT                   end every fault

e.g. `--fault outage@5:10 rest429@8:3 silence@20:4:BTC-USDT`. A missing SECONDS means 10, a
missing COUNT 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import signal
import sys

from foxtrot_stream_okx.simulator.exchange import OkxSimulator

_SPEC = re.compile(
    r"^(?P<kind>[a-z]+|rest\d{3})@(?P<at>\d+(?:\.\d+)?)"
    r"(?::(?P<arg>[A-Za-z0-9.,-]+))?(?::(?P<extra>[A-Za-z0-9.,-]+))?$"
)
KINDS = ("drop", "refuse", "stall", "silence", "garbage", "flap", "notice", "outage",
         "refusesub", "clear")  # fmt: skip


def _fault(text: str) -> tuple[float, str, str | None, str | None]:
    m = _SPEC.match(text)
    if m is None or not (m["kind"] in KINDS or m["kind"].startswith("rest")):
        raise argparse.ArgumentTypeError(f"not a fault: {text!r} (KIND@AT[:ARG[:EXTRA]])")
    if m["kind"] != "refusesub" and m["arg"] is not None:
        try:
            float(m["arg"])
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: ARG must be a number") from None
    return float(m["at"]), m["kind"], m["arg"], m["extra"]


def apply(sim: OkxSimulator, kind: str, arg: str | None, extra: str | None) -> str:
    """Run one scripted fault; returns the line that says what happened."""
    number = float(arg) if arg is not None and kind != "refusesub" else None
    seconds = number if number is not None else 10.0
    count = int(number) if number is not None else 1
    if kind == "drop":
        return f"dropped {sim.drop_all()} connections"
    if kind == "refuse":
        sim.refuse_upgrades(seconds)
    elif kind == "stall":
        sim.stall(seconds)
    elif kind == "silence":
        sim.silence(seconds, extra.split(",") if extra else None)
    elif kind == "garbage":
        return f"sent {sim.garbage(count)} malformed frames"
    elif kind.startswith("rest"):
        sim.rate_limit(count, int(kind[4:]))
    elif kind == "flap":
        sim.flap(seconds, float(extra) if extra else 0.0)
    elif kind == "notice":
        return f"notice 64008 to {sim.notice(number if number is not None else 1.0)} connections"
    elif kind == "outage":
        sim.outage(seconds)
    elif kind == "refusesub":
        for symbol in (arg or "").split(","):
            sim.refuse_subscription(symbol)
    elif kind == "clear":
        sim.clear()
    return f"{kind} {arg or ''} {extra or ''}".strip()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="foxtrot-stream simulate okx",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="faults: " + ", ".join(KINDS) + ", rest<STATUS> (see the module's help)",
    )
    parser.add_argument("--port", type=int, default=8443, help="port on 127.0.0.1 (0: any)")
    parser.add_argument("--symbols", nargs="+", default=["BTC-USDT", "ETH-USDT", "SOL-USDT"])
    parser.add_argument("--rate", type=float, default=10.0, help="updates/s per symbol")
    parser.add_argument("--idle", type=float, default=30.0, help="idle close (seconds)")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--fault", nargs="+", type=_fault, default=[], metavar="KIND@AT")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.idle <= 0:
        parser.error("--rate and --idle must be positive")
    return asyncio.run(_serve(args))


async def _serve(args: argparse.Namespace) -> int:
    sim = OkxSimulator(args.symbols, rate=args.rate, idle=args.idle, port=args.port)
    try:
        await sim.start()
    except OSError as exc:
        print(f"foxtrot-stream simulate okx: cannot listen: {exc}", file=sys.stderr)
        return 1
    print(f"OKX simulator on {sim.rest_url}; settings: {json.dumps(sim.settings())}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    started = loop.time()
    try:
        for at, kind, arg, extra in sorted(args.fault, key=lambda f: f[0]):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, started + at - loop.time()))
            if stop.is_set():
                break
            print(f"[{loop.time() - started:6.1f}s] {apply(sim, kind, arg, extra)}", flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), args.duration)
    finally:
        await sim.stop()
    return 0
