"""`foxtrot-stream demo`: the guide's configuration against a local simulator, with an outage.

It starts the adapter's bundled simulator on 127.0.0.1, runs the guide's example configuration
against it (timings scaled so the whole story fits in about a minute), and scripts an outage,
so a person sees WebSocket → HTTP polling → WebSocket, with one line explaining each change.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from foxtrot_stream.config.settings import load
from foxtrot_stream.contract.plugins import PluginHost
from foxtrot_stream.contract.records import StateChange
from foxtrot_stream.runtime.feed import Feed
from foxtrot_stream.surfaces.output import LiveTable
from foxtrot_stream.surfaces.runner import stop_on_signals
from foxtrot_stream.surfaces.serve import ServeAddressError, ServeOptions, serve_feeds
from foxtrot_stream.util.jsonc import strip_comments
from foxtrot_stream.util.redact import redact

#: The guide's example configuration, as printed there.
GUIDE_EXAMPLE = """{
  // Global WebSocket enable/disable
  "websocket.enabled": true,

  // Per-adapter settings
  "websocket.binance.enabled": true,
  "websocket.binance.symbols": [],  // Empty = all symbols, or ["BTCUSDT", "ETHUSDT"]

  // Reconnection settings
  "websocket.reconnect.max_attempts": 50,
  "websocket.reconnect.base_delay": 1.0,
  "websocket.reconnect.max_delay": 60.0,

  // Connection health monitoring
  "websocket.heartbeat.interval": 30.0,

  // Circuit breaker (automatic HTTP fallback)
  "websocket.circuit_breaker.failure_threshold": 5,
  "websocket.circuit_breaker.recovery_timeout": 60.0
}"""

DEMO_SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT")


def demo_settings(duration: float) -> dict[str, Any]:
    """The guide's example with its timings scaled to fit `duration` seconds."""
    values: dict[str, Any] = json.loads(strip_comments(GUIDE_EXAMPLE))
    scale = max(duration, 10.0) / 60.0
    values.update(
        {
            "websocket.reconnect.base_delay": round(0.25 * scale, 3),
            "websocket.reconnect.max_delay": round(2.0 * scale, 3),
            "websocket.heartbeat.interval": round(1.0 * scale, 3),
            "websocket.circuit_breaker.failure_threshold": 3,
            "websocket.circuit_breaker.recovery_timeout": round(8.0 * scale, 3),
            "http_fallback.interval": round(0.5 * scale, 3),
        }
    )
    return values


EXPLAIN = {
    ("connecting", "http"): "polled over HTTP until its WebSocket has proven itself",
    ("http", "websocket"): (
        "the WebSocket has delivered it for a heartbeat interval: HTTP polling stopped "
        "(make-before-break)"
    ),
    ("websocket", "http"): "polled over HTTP at once, while the WebSocket is retried",
}
BREAKER = {
    ("CLOSED", "OPEN"): (
        "circuit breaker opened: WebSocket attempts pause until a probe; HTTP polling goes on"
    ),
    ("HALF_OPEN", "CLOSED"): "circuit breaker closed: the WebSocket probe delivered data",
    ("OPEN", "EXHAUSTED"): "WebSocket attempts exhausted: HTTP polling until reset",
}


class Narrator:
    """Prints one line per transport change per symbol, and per breaker change that matters:
    what changed and why. It listens to the feed's own state changes (`Feed.state_listeners`),
    so a line appears as the change happens."""

    def __init__(self, feed: Feed, out: Callable[[str], None], started: float) -> None:
        self.feed = feed
        self.out = out
        self.started = started
        self.seen: dict[str, str] = {}
        """symbol → the last transport narrated (never `connecting`)."""
        self.ticks: dict[str, dict[str, int]] = {}

    def __call__(self, tick: Any) -> None:
        per = self.ticks.setdefault(tick.symbol, {})
        per[tick.transport.value] = per.get(tick.transport.value, 0) + 1

    def changed(self, change: StateChange) -> None:
        at = f"[{time.monotonic() - self.started:5.1f}s]"
        if change.kind == "breaker":
            said = BREAKER.get((change.old, change.new))
            if said is not None:
                self.out(f"{at} {change.subject}: {said}")
            return
        if change.kind != "transport" or change.new in ("connecting", "none"):
            return
        symbol, transport = change.subject, change.new
        before = self.seen.get(symbol, "connecting")
        if transport == before:
            return
        self.seen[symbol] = transport
        _, breaker = self.feed.describe_symbol(symbol)
        why = EXPLAIN.get((before, transport), "")
        if change.reason and (before, transport) == ("websocket", "http"):
            why = f"{change.reason}: {why}"
        self.out(f"{at} {symbol}: {before} → {transport} (breaker {breaker}) — {why}")


async def run_demo(
    host: PluginHost,
    *,
    adapter: str,
    duration: float,
    table: bool,
    serve: tuple[str, int] | None = None,
    serve_options: ServeOptions | None = None,
) -> int:
    spec = host.adapters.get(adapter)
    if spec is None or spec.simulator is None:
        print(
            f"foxtrot-stream: adapter {adapter!r} has no simulator to run a demo", file=sys.stderr
        )
        return 2
    started = time.monotonic()
    live: LiveTable | None = None

    def say(line: str) -> None:
        if live is not None and live.live is not None:
            live.console.print(line)  # above the live table, which keeps redrawing below
        else:
            print(line, flush=True)

    symbols = spec.simulator.demo_symbols or DEMO_SYMBOLS
    sim = await spec.simulator.start(symbols, 5.0)
    values = demo_settings(duration) | sim.settings()
    settings = load(text=json.dumps(values), schema=host.schema()).settings
    feed = Feed(host, settings, adapter)
    try:
        server = await serve_feeds(lambda: [feed], serve, serve_options)
    except ServeAddressError as exc:
        await sim.stop()
        print(f"foxtrot-stream: {exc}", file=sys.stderr)
        return 2
    narrator = Narrator(feed, say, started)
    feed.add_consumer(narrator)
    feed.state_listeners.append(narrator.changed)
    if table:
        live = LiveTable([feed])
        feed.add_consumer(live)
    stop = asyncio.Event()
    outage_at, outage_for = 0.2 * duration, 0.3 * duration
    exchange = spec.display_name.removesuffix("Adapter")
    say(
        f"demo: {exchange} simulator on {redact(str(values.get(f'{adapter}.ws_url')))}; the "
        "guide's configuration "
        f"with timings scaled to {duration:g}s; outage scripted at {outage_at:.0f}s "
        f"for {outage_for:.0f}s"
    )
    with stop_on_signals(stop):
        try:
            await feed.start(symbols)
            if live is not None:
                live.start()
            outage_done = False
            while not stop.is_set():
                elapsed = time.monotonic() - started
                if elapsed >= duration:
                    break
                if not outage_done and elapsed >= outage_at:
                    outage_done = True
                    say(
                        f"[{elapsed:5.1f}s] simulator: outage — every WebSocket dropped and new "
                        f"ones refused for {outage_for:.0f}s (REST keeps answering)"
                    )
                    sim.outage(outage_for)
                if live is not None:
                    await live.refresh()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.25):
                        await stop.wait()
        finally:
            if live is not None:
                live.stop()
            await feed.stop()
            if server is not None:
                await server.stop()
            await sim.stop()
    for symbol, per in sorted(narrator.ticks.items()):
        counts = ", ".join(f"{n} over {t}" for t, n in sorted(per.items()))
        say(f"demo: {symbol}: {counts}")
    c = feed.sequencer.counts
    say(
        f"demo: done; {c.delivered} ticks delivered; dropped {c.duplicate} duplicate and "
        f"{c.stale} out-of-order WebSocket ticks; {c.polled_unchanged} REST answers had nothing "
        "new"
    )
    return 0
