"""The sink's own write path (`foxtrot_stream_redis.wire`): the commands it encodes are the
entries `sink.entry` defines, and its connection honours what `redis.url` asks for."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import hiredis
import pytest
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st

from foxtrot_stream.contract.model import Tick, TransportKind
from foxtrot_stream.surfaces.cli import main
from foxtrot_stream_redis.ids import stream_key
from foxtrot_stream_redis.settings import RedisSettings
from foxtrot_stream_redis.sink import RedisSink, entry
from foxtrot_stream_redis.wire import Encoder, url_options

from redis_helpers import RedisServer, _command

floats = st.floats(allow_nan=False, allow_infinity=False)
ids = st.none() | st.integers(0, 2**63 - 1)


@given(
    symbol=st.text(min_size=1, max_size=12).filter(lambda s: "\r" not in s),
    bid=floats, ask=floats, last=st.none() | floats, seq=ids, trade_id=ids,
    exchange_ts=ids, transport=st.sampled_from(list(TransportKind)),
)  # fmt: skip
def test_an_encoded_xadd_is_the_entry_the_sink_defines(
    symbol: str,
    bid: float,
    ask: float,
    last: float | None,
    seq: int | None,
    trade_id: int | None,
    exchange_ts: int | None,
    transport: TransportKind,
) -> None:
    tick = Tick("binance", symbol, bid, 1.5, ask, 0.25, last, seq, trade_id, exchange_ts,
                time.time_ns(), transport)  # fmt: skip
    encoder = Encoder("ticks", 1000)
    parser = hiredis.Reader()  # a command is an array of bulk strings, as a reply can be
    for _ in range(2):  # the second from the cached parts
        parser.feed(encoder.xadd(tick, "5-7").encode())
        words = [w.decode() for w in parser.gets()]
        key = stream_key("ticks", "binance", symbol)
        pairs = [w for kv in entry(tick).items() for w in kv]
        assert words == ["XADD", key, "MAXLEN", "~", "1000", "5-7", *pairs]
        assert parser.gets() is False


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://127.0.0.1:6379/0", "redis://"),
        ("redis://127.0.0.1:6379/0?ssl_cert_reqs=none", "need a rediss://"),
        ("redis://127.0.0.1:6379/0?client_name=x", "unsupported URL parameter(s): client_name"),
    ],
)
def test_a_url_the_sink_cannot_honour_is_refused_naming_why(url: str, problem: str) -> None:
    with pytest.raises(ValueError) as raised:
        url_options(url)
    assert problem in str(raised.value)


def _ticks(n: int) -> list[Tick]:
    return [Tick("binance", "BTCUSDT", 1.0 + s, 1.0, 2.0 + s, 1.0, None, s, None, None,
                 time.time_ns(), TransportKind.WEBSOCKET) for s in range(1, n + 1)]  # fmt: skip


async def test_the_sink_authenticates_and_selects_the_urls_database(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    _command(redis_server.port, "CONFIG", "SET", "requirepass", "s3cret")
    base = f"127.0.0.1:{redis_server.port}"
    fast = {"timeout": 0.5, "retry_max": 0.05, "flush_timeout": 0.3}
    wrong = RedisSink(RedisSettings(True, f"redis://:nope@{base}/2", **fast), "binance")
    right = RedisSink(RedisSettings(True, f"redis://:s3cret@{base}/2", **fast), "binance")
    ticks = _ticks(20)
    with caplog.at_level(logging.WARNING, "foxtrot_stream_redis"):
        for sink in (wrong, right):
            await sink.start()
            for t in ticks:
                sink.put(t)
        await right.stop()
        await wrong.stop()
    assert right.health()["written"] == 20 and right.health()["errors"] == 0
    health = wrong.health()
    assert health["written"] == 0 and health["errors"] >= 1 and not health["connected"]
    assert health["dropped"] == 20  # counted at stop, after the flush gave up
    assert "WRONGPASS" in caplog.text and "nope" not in caplog.text
    client = aioredis.Redis.from_url(f"redis://:s3cret@{base}/2", decode_responses=True)
    try:
        rows = await client.xrange(stream_key("ticks", "binance", "BTCUSDT"))
        assert [f for _, f in rows] == [entry(t) for t in ticks]
        assert await client.execute_command("SELECT", 0) and not await client.dbsize()
    finally:
        await client.config_set("requirepass", "")  # the fixture stops it without a password
        await client.aclose()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://user:pw@127.0.0.1:6379/0", "expected redis://"),
        ("redis://127.0.0.1:port/0", "Port could not be cast"),
        ("redis://:pw@127.0.0.1:6379/0?ssl_cert_reqs=none", "need a rediss:// URL"),
        ("unix://", "needs the socket's path"),
    ],
)
def test_a_bad_redis_url_in_the_settings_exits_2_naming_the_key_without_its_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str, expected: str
) -> None:
    f = tmp_path / "vt_setting.json"
    f.write_text(json.dumps({"redis.url": url}))
    assert main(["config", "check", str(f)]) == 2
    err = capsys.readouterr().err
    assert "redis.url" in err and expected in err and "pw" not in err
