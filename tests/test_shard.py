"""Sharding the feed tier: a stable assignment of symbols to N feed processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from foxtrot_stream.config.settings import SettingsError, SettingsSchema, load
from foxtrot_stream.contract.plugins import PluginHost
from foxtrot_stream.runtime.feed import Feed
from foxtrot_stream.surfaces.cli import main
from foxtrot_stream.surfaces.runner import _start
from foxtrot_stream.testing import FAST_SETTINGS
from foxtrot_stream.util.shard import Shard, parse_shard, shard_of

symbols = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.", min_size=1, max_size=20)
counts = st.integers(min_value=1, max_value=64)

#: Pinned: a change here moves symbols between running shards (a redeploy of every shard).
KNOWN = {
    ("BTCUSDT", 2): 0,
    ("ETHUSDT", 2): 0,
    ("BNBUSDT", 2): 1,
    ("XRPUSDT", 2): 1,
    ("BTCUSDT", 4): 2,
    ("BNBUSDT", 4): 1,
    ("XRPUSDT", 4): 3,
    ("BTCUSDT", 16): 2,
    ("ETHUSDT", 16): 10,
    ("SOLUSDT", 16): 14,
}


@given(symbols, counts)
def test_every_symbol_is_in_exactly_one_shard(symbol: str, n: int) -> None:
    owners = [i for i in range(n) if Shard(i, n).owns(symbol)]
    assert owners == [shard_of(symbol, n)]
    assert Shard(owners[0], n).owns(symbol.lower())  # case does not matter


@given(st.lists(symbols, unique=True, max_size=50), counts)
def test_the_shards_partition_any_symbol_list(listed: list[str], n: int) -> None:
    parts = [Shard(i, n).select(listed) for i in range(n)]
    assert sorted(s for p in parts for s in p) == sorted(listed)
    assert all(p == [s for s in listed if s in p] for p in parts)  # each keeps the order


@given(counts.flatmap(lambda n: st.tuples(st.integers(0, n - 1), st.just(n))))
def test_parse_round_trips(pair: tuple[int, int]) -> None:
    assert parse_shard(f"{pair[0]}/{pair[1]}") == Shard(*pair)
    assert str(Shard(*pair)) == f"{pair[0]}/{pair[1]}"


def test_known_assignments_are_pinned() -> None:
    assert {k: shard_of(*k) for k in KNOWN} == KNOWN


def test_stable_across_processes_whatever_the_hash_seed() -> None:
    """Python's `hash` of a str is salted per process; the assignment must not be."""
    code = (
        "import json; from foxtrot_stream.util.shard import shard_of; "
        f"print(json.dumps([shard_of(s, n) for s, n in {list(KNOWN)!r}]))"
    )
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        assert json.loads(out) == list(KNOWN.values())


def test_roughly_balanced() -> None:
    listed = [f"{base}{quote}" for base in map(str, range(2000)) for quote in ("USDT",)]
    for n in (2, 3, 4, 8):
        sizes = Counter(shard_of(s, n) for s in listed)
        assert len(sizes) == n
        assert max(sizes.values()) < 1.15 * len(listed) / n, sizes


@pytest.mark.parametrize("text", ["3/2", "0/0", "a/b", "-1/4", "1/4/2", "", "2", "1 / "])
def test_bad_shards_are_refused_with_the_expected_form(text: str) -> None:
    with pytest.raises(ValueError, match=r"expected I/N with whole numbers 0 <= I < N"):
        parse_shard(text)


@pytest.mark.parametrize("text", ["3/2", "0/0", "a/b", "-1/4"])
def test_run_refuses_a_bad_shard_naming_option_value_and_form(
    text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--shard", text, "--symbols", "BTCUSDT"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argument --shard: expected I/N with whole numbers 0 <= I < N" in err
    assert repr(text) in err and "Traceback" not in err


def test_a_bad_shard_key_is_a_settings_error(schema: SettingsSchema, tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as exc:
        load(text='{"websocket.binance.shard": "4/4"}', schema=schema)
    assert str(exc.value) == (
        'error: line 1: websocket.binance.shard = "4/4": expected a string I/N with whole '
        "numbers 0 <= I < N (e.g. 0/2 and 1/2 for two shards)"
    )
    file = tmp_path / "s.json"
    file.write_text('{"websocket.binance.shard": "4/4"}', encoding="utf-8")
    assert main(["run", "--config", str(file), "--symbols", "BTCUSDT"]) == 2


def test_the_shard_key_is_normalised(schema: SettingsSchema) -> None:
    loaded = load(text='{"websocket.binance.shard": " 1 / 3 "}', schema=schema)
    assert loaded.settings.adapter("binance").shard == "1/3"
    assert load(text="{}", schema=schema).settings.adapter("binance").shard == "0/1"


async def test_a_sharded_feed_streams_its_shard_of_named_and_listed_symbols(
    host: PluginHost,
) -> None:
    """Shard 0/2 of BTC, ETH, BNB, XRP: BTC and ETH (pinned above), whether named or found by
    `run --all`; the others are another shard's, not refused."""
    from foxtrot_stream_binance.simulator import Simulator, SimulatorConfig

    config = SimulatorConfig(symbols=("BTCUSDT", "ETHUSDT", "BNBUSDT", "XRPUSDT"), rate=20.0)
    async with Simulator(config) as sim:
        values = FAST_SETTINGS | sim.settings() | {"websocket.binance.shard": "0/2"}
        settings = load(text=json.dumps(values), schema=host.schema()).settings
        for all_symbols in (False, True):
            feed = Feed(host, settings, "binance")
            try:
                assert await _start(feed, list(config.symbols), all_symbols) is None
                assert set(feed.symbols) == {"BTCUSDT", "ETHUSDT"}
                assert feed.elsewhere == {"BNBUSDT", "XRPUSDT"} and feed.refused == {}
                later = await feed.subscribe(["XRPUSDT"])  # added later: still the shard's rule
                assert later == {"XRPUSDT": "shard 1/2's, this feed serves shard 0/2"}
                assert feed.status()["shard"] == "0/2"  # what an operator reads on /status
            finally:
                await feed.stop()
        lonely = Feed(host, settings, "binance")
        try:
            assert await _start(lonely, ["BNBUSDT"], False) == (
                "nothing to stream: shard 0/2 holds none of BNBUSDT "
                "(websocket.binance.shard or --shard)"
            )
        finally:
            await lonely.stop()
