"""`python -m foxtrot_stream_redis tail URL --symbols S…`: print the ticks a Redis sink
publishes, one JSON object a line (as `foxtrot-stream run --format jsonl` prints them)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import Sequence

from foxtrot_stream_redis.source import RedisSource


async def _tail(args: argparse.Namespace) -> int:
    source = RedisSource(
        args.url, args.adapter, [s.upper() for s in args.symbols], start=args.start
    )
    out = sys.stdout
    try:
        async with asyncio.timeout(args.duration):
            async for tick in source.ticks():
                out.write(json.dumps(tick.to_json_dict(), separators=(",", ":")) + "\n")
                out.flush()
    except TimeoutError:
        pass
    finally:
        await source.aclose()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m foxtrot_stream_redis")
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("tail", help="print the ticks published to Redis (JSON lines)")
    t.add_argument("url", help="redis://HOST:PORT/DB")
    t.add_argument("--symbols", nargs="+", required=True, metavar="S")
    t.add_argument("--adapter", default="binance")
    t.add_argument("--from", dest="start", choices=("now", "oldest"), default="now")
    t.add_argument("--duration", type=float, help="stop after this many seconds")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        return asyncio.run(_tail(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
