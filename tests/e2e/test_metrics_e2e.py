"""Metric values against scripted simulator runs: rates, latency and clock offset, an outage."""

from __future__ import annotations

import json
from typing import Any

from foxtrot_stream.contract.hookspecs import hookimpl
from foxtrot_stream.contract.plugins import Origin, PluginHost
from foxtrot_stream.contract.records import StateChange
from foxtrot_stream_binance.simulator import Simulator, SimulatorConfig

from e2e_helpers import FAST, Logs, proven, settings_for, wait_for


def by_symbol(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    symbols: dict[str, dict[str, Any]] = status["symbols"]
    return symbols


async def test_a_known_rate_reads_as_that_many_updates_per_second(
    host: PluginHost, make_feed: Any
) -> None:
    config = SimulatorConfig(symbols=("BTCUSDT", "ETHUSDT"), rates={"BTCUSDT": 40.0,
                             "ETHUSDT": 4.0}, trade_ratio=0.0, seed=5)  # fmt: skip
    async with Simulator(config) as sim:
        feed, rec = await make_feed(settings_for(host, sim), ("BTCUSDT", "ETHUSDT"))
        await wait_for(lambda: len(rec.of("ETHUSDT")) >= 2, 5, "streaming")
        first = len(rec.ticks)
        await wait_for(lambda: feed.metrics.symbol("BTCUSDT").ticks >= 4 * 40, 8, "4 s of data")
        status = feed.status()
        json.dumps(status)  # plain data all the way down
        symbols = by_symbol(status)
        assert 34.0 <= symbols["BTCUSDT"]["updates_per_second"] <= 46.0
        assert 2.5 <= symbols["ETHUSDT"]["updates_per_second"] <= 5.5
        assert 37.0 <= status["updates_per_second"] <= 51.0
        # one connection: the same sum of the same symbols' rates
        assert status["connections"][0]["updates_per_second"] == status["updates_per_second"]
        assert status["ticks"] == len(rec.ticks) >= first
        assert symbols["BTCUSDT"]["transport"] == "websocket"
        assert symbols["BTCUSDT"]["last_update_age"] < 0.5
        assert status["state"] == "streaming"
        assert status["connections"][0]["uptime"] > 0


async def test_latency_raw_and_corrected_by_the_exchange_clock_offset(
    host: PluginHost, make_feed: Any
) -> None:
    """The simulated exchange's clock runs 250 ms ahead: raw latency reads about -250 ms, the
    estimated offset about +250 ms, and the corrected latency the real loopback delay."""
    config = SimulatorConfig(symbols=("BTCUSDT",), rate=40.0, trade_ratio=1.0, clock_offset=0.25)
    async with Simulator(config) as sim:
        feed, _ = await make_feed(settings_for(host, sim), ("BTCUSDT",))
        await wait_for(lambda: feed.metrics.clock_offset.total >= 4, 5, "four clock samples")
        await wait_for(lambda: feed.metrics.symbol("BTCUSDT").lat_n >= 40, 5, "40 trades")
        status = feed.status()
        clock = status["clock"]
        assert abs(clock["offset_ms"] - 250.0) <= clock["uncertainty_ms"] + 1.0
        assert clock["uncertainty_ms"] < 25 and clock["samples"] >= 4
        symbol = by_symbol(status)["BTCUSDT"]
        raw, corrected = symbol["latency_ms"], symbol["latency_corrected_ms"]
        assert raw["samples"] >= 40
        assert -260.0 < raw["p50"] < -200.0  # the exchange's stamps are from 250 ms "ahead"
        assert -5.0 < corrected["p50"] < 50.0  # what loopback really costs
        assert corrected["p99"] >= corrected["p95"] >= corrected["p50"]
        assert corrected["max"] >= corrected["p99"]
        # one symbol on one connection: the adapter's and the connection's pools are the same
        assert status["latency_ms"]["samples"] >= raw["samples"]
        conn = status["connections"][0]
        assert conn["latency_corrected_ms"]["samples"] >= corrected["samples"]
        assert -5.0 < conn["latency_corrected_ms"]["p50"] < 50.0


async def test_an_outage_resets_uptime_counts_errors_and_walks_the_breaker(
    host: PluginHost, sim: Simulator, logs: Logs
) -> None:
    from foxtrot_stream.runtime.feed import Feed

    seen: list[StateChange] = []

    class Observer:
        @hookimpl
        def on_state_change(self, change: StateChange) -> None:
            seen.append(change)

    local = PluginHost.discover()
    local.register(Observer(), Origin("observer", "t", "test", "0"))
    feed = Feed(local, settings_for(local, sim), "binance")
    try:
        await feed.start(("BTCUSDT", "ETHUSDT"))
        await wait_for(proven(feed, ("BTCUSDT", "ETHUSDT")), 5, "streaming")
        await wait_for(lambda: (feed.status()["connections"][0]["uptime"] or 0) > 0.6, 3, "up")
        before = feed.status()["connections"][0]

        sim.outage(1.6)  # every WebSocket dropped, new ones refused; REST keeps answering
        await wait_for(
            lambda: feed.status()["connections"][0]["breaker"] == "OPEN", 5, "the breaker open"
        )
        during = feed.status()
        assert during["state"] == "degraded"
        assert during["connections"][0]["uptime"] is None
        assert during["connections"][0]["breaker"] == "OPEN"
        assert {s["transport"] for s in during["symbols"].values()} == {"http"}
        assert (
            sum(during["errors_per_minute"].values())
            >= FAST["websocket.circuit_breaker.failure_threshold"]
        )

        await wait_for(lambda: feed.status()["state"] == "streaming", 8, "recovery")
        after = feed.status()
        conn = after["connections"][0]
        assert conn["breaker"] == "CLOSED"
        assert conn["uptime"] is not None and conn["uptime"] < before["uptime"] + 2.0
        assert conn["connects"] >= before["connects"] + 1
        assert after["reconnects"] >= 2
        assert after["http"]["polls"] >= 1
        assert sum(after["errors_total"].values()) >= 3
        assert sum(conn["failures"].values()) >= 3 and "connect_failed" in conn["failures"]

        breaker = [(c.old, c.new) for c in seen if c.kind == "breaker"]
        # opened once; then probes (a failed one reopens) until one delivers and closes it
        assert breaker[0] == ("CLOSED", "OPEN") and breaker[-1] == ("HALF_OPEN", "CLOSED")
        probes = breaker[1:-1]
        assert probes == [("OPEN", "HALF_OPEN"), ("HALF_OPEN", "OPEN")] * (len(probes) // 2) + [
            ("OPEN", "HALF_OPEN")
        ]
        btc = [c.new for c in seen if c.kind == "transport" and c.subject == "BTCUSDT"]
        # polled from the subscribe, streamed once proven, polled from the drop, streamed again
        assert btc == ["http", "websocket", "http", "websocket"]
        assert [c.new for c in seen if c.kind == "connection"][:2] == ["up", "down"]
        assert [c.kind for c in seen] == [c["kind"] for c in after["recent_changes"]]
    finally:
        await feed.stop()
    assert feed.status()["state"] == "stopped"


async def test_the_terminal_table_shows_the_status_figures(
    host: PluginHost, sim: Simulator, make_feed: Any
) -> None:
    """`run --format table` and `demo` show what `/status` shows."""
    import io

    from rich.console import Console

    from foxtrot_stream.surfaces.output import LiveTable

    feed, _ = await make_feed(settings_for(host, sim))
    out = io.StringIO()
    table = LiveTable([feed], Console(file=out, width=160, color_system=None))
    feed.add_consumer(table)
    await wait_for(proven(feed), 5, "streaming")
    await wait_for(lambda: feed.metrics.symbols.get("BTCUSDT") is not None
                   and feed.metrics.symbol("BTCUSDT").lat_n >= 2, 5, "trades")  # fmt: skip
    await wait_for(lambda: feed.status()["clock"]["offset_ms"] is not None, 3, "an offset")
    table.console.print(table.render())
    text = out.getvalue()
    for column in ("transport", "breaker", "upd/s", "p50 ms", "p99 ms", "uptime", "err/min"):
        assert column in text
    status = feed.status()
    for symbol in status["symbols"]:
        assert symbol in text
    assert "websocket" in text and "CLOSED" in text
    assert "BinanceAdapter: streaming" in text and "clock offset" in text


# --- /metrics: conventional Prometheus types --------------------------------------------------


def assert_conventional(families: list[Any]) -> dict[str, str]:
    """Every family's samples fit its declared type; returns family name → type.

    No `quantile` label outside a summary; a summary has `_sum` and `_count` for every label
    set that has quantiles (0 ≤ φ ≤ 1); a histogram's buckets, per label set, are cumulative,
    end at `+Inf`, and that bucket equals `_count`; `_sum` is present; counters are ≥ 0."""
    types: dict[str, str] = {}
    for family in families:
        types[family.name] = family.type
        assert family.type in ("counter", "gauge", "summary", "histogram"), family
        series: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
        for s in family.samples:
            if family.type != "summary":
                assert "quantile" not in s.labels, (family.name, s)
            rest = tuple(sorted((k, v) for k, v in s.labels.items() if k not in ("le", "quantile")))
            per = series.setdefault(rest, {"buckets": [], "quantiles": [], "sum": None,
                                           "count": None})  # fmt: skip
            suffix = s.name[len(family.name) :]
            if family.type == "counter":
                assert suffix in ("_total", "_created"), (family.name, s.name)
                assert s.value >= 0
            elif family.type == "gauge":
                assert suffix == "", (family.name, s.name)
            elif family.type == "histogram":
                assert suffix in ("_bucket", "_sum", "_count", "_created"), s.name
                if suffix == "_bucket":
                    per["buckets"].append((float(s.labels["le"]), s.value))
            else:
                assert suffix in ("", "_sum", "_count", "_created"), s.name
                if suffix == "":
                    assert 0.0 <= float(s.labels["quantile"]) <= 1.0, s
                    per["quantiles"].append((float(s.labels["quantile"]), s.value))
            if suffix == "_sum":
                per["sum"] = s.value
            elif suffix == "_count":
                per["count"] = s.value
        for labels, per in series.items():
            where = (family.name, labels)
            if family.type == "histogram":
                bounds = [b for b, _ in per["buckets"]]
                counts = [c for _, c in per["buckets"]]
                assert bounds == sorted(bounds) and bounds[-1] == float("inf"), where
                assert counts == sorted(counts), where  # cumulative
                assert per["count"] == counts[-1], where
                assert per["sum"] is not None, where
                if per["count"] == 0:
                    assert per["sum"] == 0, where
            if family.type == "summary":
                assert per["count"] is not None and per["sum"] is not None, where
                assert per["count"] >= 0, where
                qs = sorted(per["quantiles"])
                assert [v for _, v in qs] == sorted(v for _, v in qs), where  # monotonic in φ
                if qs:
                    assert per["count"] > 0, where
    return types


async def test_metrics_families_have_conventional_types(host: PluginHost, make_feed: Any) -> None:
    """The real /metrics endpoint, parsed by prometheus-client's parser, with a clock offset
    (so corrected figures exist) and trades (so latency has samples)."""
    import aiohttp
    from prometheus_client.parser import text_string_to_metric_families

    from foxtrot_stream.surfaces.serve import StatusServer

    config = SimulatorConfig(symbols=("BTCUSDT", "ETHUSDT"), rate=40.0, trade_ratio=0.5,
                             clock_offset=0.25, seed=3)  # fmt: skip
    async with Simulator(config) as sim:
        feed, _ = await make_feed(settings_for(host, sim), ("BTCUSDT", "ETHUSDT"))
        await wait_for(lambda: feed.metrics.clock_offset.total >= 1, 5, "a clock sample")
        await wait_for(lambda: feed.metrics.symbol("BTCUSDT").lat_n >= 20, 5, "20 trades")
        server = StatusServer(lambda: [feed], "127.0.0.1", 0)
        await server.start()
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(server.url + "metrics") as resp,
            ):
                assert resp.status == 200
                text = await resp.text()
        finally:
            await server.stop()
    families = list(text_string_to_metric_families(text))
    types = assert_conventional(families)
    assert types["foxtrot_stream_tick_latency_seconds"] == "histogram"
    assert types["foxtrot_stream_tick_latency_window_seconds"] == "summary"
    got = {f.name: f for f in families}
    window = [s for s in got["foxtrot_stream_tick_latency_window_seconds"].samples
              if s.labels["symbol"] == "BTCUSDT"]  # fmt: skip
    quantiles = {s.labels["quantile"] for s in window if "quantile" in s.labels}
    assert quantiles == {"0.5", "0.95", "0.99", "1"}
    hist = [s for s in got["foxtrot_stream_tick_latency_seconds"].samples
            if s.labels["symbol"] == "BTCUSDT"]  # fmt: skip
    count = next(s.value for s in window if s.name.endswith("_count"))
    assert count == next(s.value for s in hist if s.name.endswith("_count")) >= 20


async def test_the_terminal_table_fits_the_width_and_keeps_the_prices(
    host: PluginHost, sim: Simulator, make_feed: Any
) -> None:
    """At any width the table is no wider than the terminal (rich would otherwise cut the
    cells short with `…`), bid and ask are whole, and columns go from the least important."""
    import io

    from rich.console import Console

    from foxtrot_stream.surfaces.output import COLUMN_PRIORITY, LiveTable

    feed, _ = await make_feed(settings_for(host, sim))
    table = LiveTable([feed], Console(file=io.StringIO(), width=80, color_system=None))
    feed.add_consumer(table)
    await wait_for(proven(feed), 5, "streaming")
    await wait_for(lambda: len(table.last) == 3, 5, "a tick of each symbol")
    for width in (50, 60, 70, 80, 90, 100, 120, 140, 200):
        out = io.StringIO()
        table.console = Console(file=out, width=width, color_system=None)
        table.console.print(table.render())
        lines = out.getvalue().splitlines()
        assert max(map(len, lines)) <= width, (width, out.getvalue())
        header = next(line for line in lines if line.startswith("┃ symbol"))
        columns = [c.strip() for c in header.strip("┃").split("┃")]
        assert set(columns) == set(COLUMN_PRIORITY[: len(columns)]), (width, columns)
        assert "…" not in out.getvalue(), (width, out.getvalue())
        for line in lines:
            if line.startswith("│ ") and line[2:9] in ("BTCUSDT", "ETHUSDT", "BNBUSDT"):
                cells = dict(zip(columns, (c.strip() for c in line.strip("│").split("│")),
                                 strict=True))  # fmt: skip
                assert float(cells["bid"]) > 0 and float(cells["ask"]) > 0
        if width >= 140:
            assert len(columns) == len(COLUMN_PRIORITY)


async def test_on_a_terminal_the_table_holds_the_rows_that_fit_problems_first(
    host: PluginHost, sim: Simulator, make_feed: Any
) -> None:
    """`run --all` in a terminal: the table holds as many rows as the terminal's height has
    room for (formatting 2,000 rows 4x/s cost a core), symbols not on the WebSocket first, and
    says how many it left out."""
    import io

    import attrs
    from rich.console import Console

    from foxtrot_stream.surfaces.output import LiveTable

    feed, _ = await make_feed(settings_for(host, sim))
    await wait_for(proven(feed), 5, "streaming")
    st = feed.status_record()
    model = next(iter(st.symbols.values()))
    many = {f"S{i:02d}USDT": attrs.evolve(model, symbol=f"S{i:02d}USDT") for i in range(40)}
    for name in ("S33USDT", "S07USDT"):  # two symbols polled over HTTP
        many[name] = attrs.evolve(many[name], transport="http")
    out = io.StringIO()
    console = Console(file=out, width=160, height=14, force_terminal=True, color_system=None)
    table = LiveTable([feed], console)
    table._records = [attrs.evolve(st, symbols=many)]
    console.print(table.render())
    rows = [line[2:9] for line in out.getvalue().splitlines() if line.startswith("│ S")]
    assert rows[:2] == ["S07USDT", "S33USDT"]  # off the WebSocket: shown first, in order
    assert rows[2:] == [f"S{i:02d}USDT" for i in range(40) if i not in (7, 33)][: len(rows) - 2]
    assert len(rows) == 14 - 1 - 6 - 1  # height - the adapter's caption - chrome - "more"
    assert f"… and {40 - len(rows)} more symbols" in out.getvalue()
    off = io.StringIO()  # off a terminal (a log file): every row, printed once
    table.console = Console(file=off, width=160, color_system=None)
    table.console.print(table.render())
    assert sum(line.startswith("│ S") for line in off.getvalue().splitlines()) == 40
