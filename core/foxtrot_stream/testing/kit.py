"""The conformance kit: one suite every exchange plugin runs against its own fake exchange.

A plugin's tests subclass `ConformanceSuite` and say how to start its fake exchange on
loopback (`KitExchange`); pytest collects the suite's tests from the subclass:

    from foxtrot_stream.testing.kit import ConformanceSuite, KitExchange

    class TestKraken(ConformanceSuite):
        def kit_exchange(self) -> KitExchange:
            return KitExchange(adapter="kraken", symbols=("XBTUSD", "ETHUSD"),
                               serve=my_fake_exchange, settings=my_keys)

Every scenario runs the real feed through a `FaultProxy` in front of the fake, with the
scaled-down timings of `FAST_SETTINGS`: registration and documented settings; a frame handler
that never raises on garbage and reports it; streaming in order without duplicates; live
subscribe and unsubscribe; the heartbeat keeping a connection; a refused subscription polled
and reported on its symbol; failover (the WebSocket cut and refused → polled → streamed again)
within the liveness bound. Tests are plain functions (each runs its own event loop), so a
plugin needs no asyncio pytest plugin to run them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

import attrs

from foxtrot_stream.contract.model import Tick, TransportKind
from foxtrot_stream.contract.plugins import PluginHost
from foxtrot_stream.contract.records import ExchangeAdapter
from foxtrot_stream.testing.proxy import GARBAGE, FaultProxy
from foxtrot_stream.testing.settings import FAST_SETTINGS

__all__ = ["ConformanceSuite", "KitExchange", "KitServed", "Recorder"]

WS, HTTP = TransportKind.WEBSOCKET, TransportKind.HTTP


class KitServed(Protocol):
    """A running fake exchange: its base URLs, and a way to make it refuse a symbol."""

    ws_url: str
    http_url: str

    def refuse_subscription(self, symbol: str) -> None:
        """From now on, a subscription of `symbol` on a live connection is refused."""


@attrs.frozen
class KitExchange:
    """What the suite needs to know about a plugin and its fake exchange.

    `serve()` starts the fake on 127.0.0.1 (an async context manager yielding `KitServed`);
    `settings(ws_url, http_url)` gives the adapter's own keys that point it at those base URLs
    (the suite passes the proxy's); `symbols` are at least two listed symbols that update a few
    times a second."""

    adapter: str
    symbols: tuple[str, ...]
    serve: Callable[[], AbstractAsyncContextManager[KitServed]]
    settings: Callable[[str, str], Mapping[str, Any]]
    refusable: str | None = None
    """A listed symbol the fake can be told to refuse (None: the refusal test is skipped)."""


class Recorder:
    """A consumer keeping every tick with its arrival time, and the suite's invariants."""

    def __init__(self) -> None:
        self.ticks: list[tuple[float, Tick]] = []

    def __call__(self, tick: Tick) -> None:
        self.ticks.append((time.monotonic(), tick))

    def of(self, symbol: str, transport: TransportKind | None = None) -> list[Tick]:
        return [
            t
            for _, t in self.ticks
            if t.symbol == symbol and (transport is None or t.transport is transport)
        ]

    def max_gap(self, symbol: str, since: float, until: float) -> float:
        arrivals = [at for at, t in self.ticks if t.symbol == symbol and since < at < until]
        points = [since, *arrivals, until]
        return max(b - a for a, b in itertools.pairwise(points))

    def assert_no_duplicate_or_out_of_order(self) -> None:
        """Per symbol: ids strictly increasing where the exchange has them, else exchange times
        never going back; never the same quote twice in a row from REST."""
        by_symbol: dict[str, list[Tick]] = {}
        for _, tick in self.ticks:
            by_symbol.setdefault(tick.symbol, []).append(tick)
        for symbol, ticks in by_symbol.items():
            ids = [(t.seq, t.trade_id or -1) for t in ticks if t.seq is not None]
            assert all(a < b for a, b in itertools.pairwise(ids)), f"{symbol}: ids {ids[-10:]}"
            times = [
                t.exchange_ts
                for t in ticks
                if t.seq is None and t.trade_id is None and t.exchange_ts is not None
            ]
            assert times == sorted(times), f"{symbol}: exchange times went back"
            for a, b in itertools.pairwise(ticks):
                if b.transport is HTTP:
                    assert (a.bid, a.bid_qty, a.ask, a.ask_qty) != (
                        b.bid,
                        b.bid_qty,
                        b.ask,
                        b.ask_qty,
                    ), f"{symbol}: a polled repeat"


class _Events:
    """`ConnectionEvents` for the handler fuzz: counts what the handler reports."""

    def __init__(self) -> None:
        self.malformed_count = 0

    def control_response(self, request_id: int, error: str | None) -> None:
        pass

    def subscription_result(self, stream: str, error: str | None) -> None:
        pass

    def malformed(self, reason: str, frame: str | bytes) -> None:
        self.malformed_count += 1

    def server_shutdown(self) -> None:
        pass


async def _until(predicate: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.02)


class ConformanceSuite:
    """Subclass it (name starting with `Test`) and implement `kit_exchange`."""

    #: How long each streaming scenario runs (seconds); raise it for a slow fake.
    stream_for = 2.5

    def kit_exchange(self) -> KitExchange:
        raise NotImplementedError("return the KitExchange of your plugin")

    def kit_host(self) -> PluginHost:
        """The plugins the suite runs with: every installed one by default."""
        return PluginHost.discover()

    # --- the harness -------------------------------------------------------------------------

    @asynccontextmanager
    async def _feed(
        self, symbols: Sequence[str], extra: Mapping[str, Any] | None = None
    ) -> AsyncIterator[tuple[Any, Recorder, FaultProxy, KitServed]]:
        from foxtrot_stream.config.settings import load
        from foxtrot_stream.runtime.feed import Feed  # the runtime, only when a scenario runs

        exchange, host = self.kit_exchange(), self.kit_host()
        async with exchange.serve() as served, FaultProxy(served.ws_url, served.http_url) as proxy:
            values = {
                **FAST_SETTINGS,
                **exchange.settings(proxy.ws_url, proxy.http_url),
                **(extra or {}),
            }
            feed = Feed(host, load(text=json.dumps(values), schema=host.schema()).settings,
                        exchange.adapter)  # fmt: skip
            recorder = Recorder()
            feed.add_consumer(recorder)
            try:
                await feed.start(symbols)
                yield feed, recorder, proxy, served
            finally:
                await feed.stop()

    def _run(self, scenario: Callable[[], Any]) -> None:
        asyncio.run(asyncio.wait_for(scenario(), 60))

    def _adapter(self) -> ExchangeAdapter:
        exchange, host = self.kit_exchange(), self.kit_host()
        spec = host.adapters[exchange.adapter]
        from foxtrot_stream.config.settings import load

        plugin_settings = load(text="{}", schema=host.schema()).settings.plugins
        own = plugin_settings.get(exchange.adapter)
        return spec.factory(own)

    # --- the suite -----------------------------------------------------------------------------

    def test_registers_with_documented_settings(self) -> None:
        from foxtrot_stream.config.settings import SettingsSchema, all_keys

        exchange, host = self.kit_exchange(), self.kit_host()
        assert exchange.adapter in host.adapters, f"no adapter {exchange.adapter!r} registered"
        assert not [p for p in host.problems if exchange.adapter in str(p)], host.problems
        spec = host.adapters[exchange.adapter]
        schema = SettingsSchema(
            adapters=(exchange.adapter,),
            plugin_settings={exchange.adapter: spec.settings_cls} if spec.settings_cls else {},
        )
        for key in all_keys(schema):
            assert key.doc, f"{key.key} has no documentation (metadata doc)"
            if key.type.startswith(("number", "integer")):
                assert " from " in key.type, f"{key.key}: give it a range (settings.ranged)"
        assert len(exchange.symbols) >= 2, "the suite needs at least two symbols"

    def test_handler_never_raises_and_reports_garbage(self) -> None:
        adapter = self._adapter()
        events = _Events()
        emitted: list[Tick] = []
        handler = adapter.make_handler(emitted.append, events)
        for frame in GARBAGE:
            handler(frame, time.time_ns())
        assert not emitted, f"garbage became ticks: {emitted}"
        assert events.malformed_count >= 2, "undecodable frames must be reported as malformed"

        from hypothesis import HealthCheck, given, settings  # the `testing` extra
        from hypothesis import strategies as st

        json_values = st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=6), inner, max_size=4)
            ),
            max_leaves=8,
        )
        frames = st.one_of(
            st.binary(max_size=64),
            st.text(max_size=64),
            json_values.map(lambda v: json.dumps(v)),
        )

        @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
        @given(frames)
        def fuzz(frame: str | bytes) -> None:
            handler(frame, time.time_ns())  # must not raise (implausible ticks are the
            # sequencer's to reject at the edge)

        fuzz()

    def test_streams_every_symbol_in_order_without_duplicates(self) -> None:
        symbols = self.kit_exchange().symbols

        async def scenario() -> None:
            async with self._feed(symbols) as (feed, rec, _, _):
                await _until(
                    lambda: all(feed.describe_symbol(s)[0] == "websocket" for s in symbols),
                    10,
                    "every symbol streamed over the WebSocket",
                )
                await asyncio.sleep(self.stream_for)
                for symbol in symbols:
                    assert rec.of(symbol, WS), f"{symbol}: nothing by WebSocket"
                rec.assert_no_duplicate_or_out_of_order()
                assert feed.counters.failures == {}, feed.counters.failures

        self._run(scenario)

    def test_subscribes_and_unsubscribes_on_a_live_connection(self) -> None:
        first, second = self.kit_exchange().symbols[:2]

        async def scenario() -> None:
            async with self._feed([first]) as (feed, rec, proxy, _):
                await _until(lambda: bool(rec.of(first, WS)), 10, f"{first} streamed")
                await feed.subscribe([second])
                await _until(lambda: bool(rec.of(second, WS)), 10, f"{second} streamed too")
                assert proxy.stats.upgrades == 1, "a live subscribe needs no new connection"
                await feed.unsubscribe([second])
                await asyncio.sleep(0.3)  # what was in flight
                count = len(rec.of(second))
                await asyncio.sleep(1.0)
                assert len(rec.of(second)) == count, f"{second} still arrives after unsubscribe"
                assert rec.of(first, WS)[-1] is rec.of(first)[-1]

        self._run(scenario)

    def test_heartbeat_keeps_a_quiet_path_alive(self) -> None:
        """Several heartbeat intervals on one connection: whatever heartbeat the exchange
        wants (protocol pings or the adapter's `AppHeartbeat`), it is answered."""
        symbols = self.kit_exchange().symbols[:1]

        async def scenario() -> None:
            async with self._feed(symbols) as (feed, _, proxy, _):
                await asyncio.sleep(3.5)  # pings go out at least once a second
                assert feed.counters.failures == {}, feed.counters.failures
                assert proxy.stats.upgrades == 1
                assert proxy.stats.frames_up >= 2, "no heartbeat was sent"

        self._run(scenario)

    def test_a_refused_subscription_is_polled_and_reported(self) -> None:
        import pytest

        exchange = self.kit_exchange()
        if exchange.refusable is None:
            pytest.skip("the fake exchange cannot refuse a subscription (KitExchange.refusable)")
        first, refused = exchange.symbols[0], exchange.refusable

        async def scenario() -> None:
            async with self._feed([first]) as (feed, rec, _, served):
                await _until(
                    lambda: feed.describe_symbol(first)[0] == "websocket", 10, f"{first} streamed"
                )
                served.refuse_subscription(refused)
                await feed.subscribe([refused])
                await _until(lambda: feed.counters.rejected >= 1, 10, "the refusal reported")
                await _until(lambda: bool(rec.of(refused, HTTP)), 10, f"{refused} polled")
                await _until(
                    lambda: "refused" in feed.status()["symbols"][refused]["reason"],
                    5,
                    f"{refused}'s status saying why",
                )
                assert feed.status()["symbols"][refused]["transport"] == "http"
                # the other symbol streams on, undisturbed
                assert feed.describe_symbol(first)[0] == "websocket", feed.status()["symbols"]

        self._run(scenario)

    def test_fails_over_to_polling_and_back_within_the_bound(self) -> None:
        from foxtrot_stream.runtime.feed import liveness_bound

        symbols = self.kit_exchange().symbols[:2]
        bound = liveness_bound(0.3, 0.2, 0.05) + 0.5  # FAST timings, loopback, a busy machine

        async def scenario() -> None:
            async with self._feed(symbols) as (feed, rec, proxy, _):
                await _until(
                    lambda: all(feed.describe_symbol(s)[0] == "websocket" for s in symbols),
                    10,
                    "streaming",
                )
                cut = time.monotonic()
                proxy.refuse(1.5)
                proxy.drop()
                await _until(
                    lambda: all(rec.of(s, HTTP) for s in symbols), 5, "polling bridging the cut"
                )
                await _until(
                    lambda: all(feed.describe_symbol(s)[0] == "websocket" for s in symbols),
                    15,
                    "the WebSocket back",
                )
                back = time.monotonic()
                for symbol in symbols:
                    gap = rec.max_gap(symbol, cut, back)
                    assert gap < bound, f"{symbol}: {gap:.2f}s without a tick (bound {bound:.2f})"
                rec.assert_no_duplicate_or_out_of_order()

        self._run(scenario)
