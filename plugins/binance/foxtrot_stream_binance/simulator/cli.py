"""`foxtrot-stream simulate binance`: run the simulator on 127.0.0.1 from the command line.

Faults are scripted with `--fault KIND@AT[:FOR]` (seconds from start), e.g.
`--fault drop@10`, `--fault refuse@5:10`, `--fault stall@20:5`, `--fault silence@8:4`,
`--fault malformed@3:5` (FOR = how many frames), `--fault flap@12:6`, `--fault shutdown@30`,
`--fault lifetime@40`, `--fault rest429@15:3` (FOR = how many requests), `--fault rest418@15:1`,
`--fault rest500@15:2`, `--fault slowrest@15:10`, `--fault outage@10:20`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable

from foxtrot_stream_binance.simulator.app import Simulator, SimulatorConfig, synthetic_symbols

KINDS: dict[str, Callable[[Simulator, float], object]] = {
    "drop": lambda sim, _n: sim.drop_all(),
    "refuse": lambda sim, n: sim.refuse_upgrades(n or 10.0),
    "stall": lambda sim, n: sim.stall(n or 10.0),
    "silence": lambda sim, n: sim.silence(n or 10.0),
    "malformed": lambda sim, n: sim.malformed(int(n or 1)),
    "flap": lambda sim, n: sim.flap(n or 10.0),
    "shutdown": lambda sim, _n: sim.server_shutdown(),
    "lifetime": lambda sim, _n: sim.cut_lifetime(),
    "rest429": lambda sim, n: sim.rest_errors(429, int(n or 1)),
    "rest418": lambda sim, n: sim.rest_errors(418, int(n or 1), retry_after=120.0),
    "rest500": lambda sim, n: sim.rest_errors(500, int(n or 1)),
    "slowrest": lambda sim, n: sim.slow_rest(n or 10.0, 2.0),
    "outage": lambda sim, n: sim.outage(n or 10.0),
}


def _fault(text: str) -> tuple[str, float, float]:
    kind, _, when = text.partition("@")
    at, _, length = when.partition(":")
    if kind not in KINDS or not at:
        raise argparse.ArgumentTypeError(
            f"expected KIND@AT[:FOR] with KIND one of {', '.join(KINDS)}, got {text!r}"
        )
    try:
        return kind, float(at), float(length) if length else 0.0
    except ValueError:
        raise argparse.ArgumentTypeError(f"AT and FOR must be numbers, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="foxtrot-stream simulate binance",
        description="A Binance-Spot-compatible market-data server on 127.0.0.1.",
        epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--port", type=int, default=9443, help="TCP port (0: any free port)")
    p.add_argument("--symbols", nargs="+", default=["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT"])
    p.add_argument("--synthetic", type=int, default=0, help="add N synthetic symbols")
    p.add_argument("--rate", type=float, default=10.0, help="book updates/s per symbol")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--ping-interval", type=float, default=20.0)
    p.add_argument("--pong-timeout", type=float, default=60.0)
    p.add_argument("--lifetime", type=float, default=24 * 3600.0, help="connection lifetime (s)")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--fault", type=_fault, action="append", default=[], metavar="KIND@AT[:FOR]")
    return p


async def serve(args: argparse.Namespace) -> int:
    symbols = tuple(s.upper() for s in args.symbols) + synthetic_symbols(args.synthetic)
    config = SimulatorConfig(
        symbols=symbols,
        rate=args.rate,
        seed=args.seed,
        port=args.port,
        ping_interval=args.ping_interval,
        pong_timeout=args.pong_timeout,
        lifetime=args.lifetime,
    )
    sim = Simulator(config)
    try:
        await sim.start()
    except OSError as exc:
        print(f"simulate: cannot listen on 127.0.0.1:{args.port}: {exc}", file=sys.stderr)
        return 2
    print(
        f"simulate: Binance simulator: ws {sim.ws_url}  rest {sim.rest_url}  "
        f"({len(symbols)} symbols at {args.rate:g}/s)",
        file=sys.stderr,
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    timers = [loop.call_later(at, KINDS[kind], sim, length) for kind, at, length in args.fault]
    try:
        async with asyncio.timeout(args.duration):
            await stop.wait()
    except TimeoutError:
        pass
    finally:
        for timer in timers:
            timer.cancel()
        await sim.stop()
    return 0


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    return asyncio.run(serve(args))
