"""Golden frames, shaped as OKX's v5 documentation shows them, decode as they should."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest

from foxtrot_stream import Tick, TransportKind
from foxtrot_stream_okx.adapter import LIMITS, OkxAdapter

# The order book channel's bbo-tbt push (levels: price, size, a deprecated "0", order count).
BBO = (
    b'{"arg":{"channel":"bbo-tbt","instId":"BCH-USDT-SWAP"},"data":[{"asks":[["111.06","55154",'
    b'"0","2"]],"bids":[["111.05","57745","0","2"]],"ts":"1670324386802","seqId":363996337}]}'
)
SUBSCRIBED = (
    b'{"event":"subscribe","arg":{"channel":"bbo-tbt","instId":"BTC-USDT"},"connId":"a4d3ae55"}'
)
UNSUBSCRIBED = (
    b'{"event":"unsubscribe","arg":{"channel":"bbo-tbt","instId":"BTC-USDT"},"connId":"a4d3ae55"}'
)
NO_SUCH_CHANNEL = (
    b'{"event":"error","code":"60018","msg":"Wrong URL or channel:bbo-tbt,instId:XYZ-USDT '
    b"doesn't exist. Please use the correct URL, channel and parameters referring to API "
    b'document.","connId":"a4d3ae55"}'
)
INVALID_REQUEST = (
    b'{"event":"error","code":"60012","msg":"Invalid request: {\\"op\\": \\"subscribe\\", '
    b'\\"argss\\":[{ \\"channel\\" : \\"tickers\\", \\"instId\\" : \\"LTC-USD-200327\\"}]}",'
    b'"connId":"a4d3ae55"}'
)
NOTICE = (
    b'{"event":"notice","code":"64008","msg":"The connection will soon be closed for a service '
    b'upgrade. Please reconnect.","connId":"a4d3ae55"}'
)


class Events:
    def __init__(self) -> None:
        self.results: list[tuple[str, str | None]] = []
        self.malformed_frames: list[tuple[str, str | bytes]] = []
        self.shutdowns = 0

    def control_response(self, request_id: int, error: str | None) -> None:
        raise AssertionError("OKX answers per item, never per request")

    def subscription_result(self, stream: str, error: str | None) -> None:
        self.results.append((stream, error))

    def malformed(self, reason: str, frame: str | bytes) -> None:
        self.malformed_frames.append((reason, frame))

    def server_shutdown(self) -> None:
        self.shutdowns += 1


Decode = tuple[list[Tick], Events, Callable[[str | bytes, int], None]]


@pytest.fixture
def decode() -> Decode:
    ticks: list[Tick] = []
    events = Events()
    return ticks, events, OkxAdapter().make_handler(ticks.append, events)


def test_a_bbo_tbt_push_is_one_tick_with_its_seq_id_and_time(decode: Decode) -> None:
    ticks, events, handler = decode
    handler(BBO, 5)
    assert ticks == [
        Tick(
            "okx",
            "BCH-USDT-SWAP",
            111.05,
            57745.0,
            111.06,
            55154.0,
            None,
            363996337,
            None,
            1670324386802,
            5,
            TransportKind.WEBSOCKET,
        )
    ]
    assert events.malformed_frames == [] and events.results == []


def test_text_frames_decode_too(decode: Decode) -> None:
    ticks, _, handler = decode
    handler(BBO.decode(), 1)
    assert len(ticks) == 1


def test_each_subscribed_item_is_confirmed_by_its_stream(decode: Decode) -> None:
    _, events, handler = decode
    handler(SUBSCRIBED, 1)
    handler(UNSUBSCRIBED, 2)  # nothing to report
    assert events.results == [("bbo-tbt:BTC-USDT", None)]
    assert OkxAdapter().streams_for("BTC-USDT") == ("bbo-tbt:BTC-USDT",)


def test_an_error_naming_its_item_refuses_that_stream(decode: Decode) -> None:
    _, events, handler = decode
    handler(NO_SUCH_CHANNEL, 1)
    [(stream, error)] = events.results
    assert stream == "bbo-tbt:XYZ-USDT"
    assert error is not None and error.startswith("60018: Wrong URL")
    assert events.malformed_frames == []


def test_an_error_naming_no_item_is_reported_not_raised(decode: Decode) -> None:
    _, events, handler = decode
    handler(INVALID_REQUEST, 1)
    assert events.results == []
    [(reason, _)] = events.malformed_frames
    assert reason.startswith("error 60012: Invalid request")


def test_the_service_upgrade_notice_is_a_server_shutdown(decode: Decode) -> None:
    _, events, handler = decode
    handler(NOTICE, 1)
    assert events.shutdowns == 1 and events.malformed_frames == []


@pytest.mark.parametrize(
    "frame",
    [
        b'{"arg":{"channel":"bbo-tbt","instId":"BTC-USDT"},"data":[{"asks":[],"bids":[],"ts":"1","seqId":1}]}',
        b'{"arg":{"channel":"bbo-tbt","instId":"BTC-USDT"},"data":[{"asks":[["x","1"]],"bids":[["1","1"]],"ts":"1","seqId":1}]}',
        b'{"arg":{"channel":"bbo-tbt","instId":"BTC-USDT"},"data":[{"asks":[["2","1"]],"bids":[["1","1"]],"ts":"1","seqId":-5}]}',
        b'{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"instType":"SPOT","instId":"BTC-USDT","bidPx":"1"}]}',
        b"pong",
        b"[]",
        b"\xff\xfe",
    ],
)
def test_malformed_frames_are_reported_never_ticks(decode: Decode, frame: bytes) -> None:
    ticks, events, handler = decode
    handler(frame, 1)
    assert ticks == [] and len(events.malformed_frames) == 1


def test_control_messages_are_okx_ops_with_one_arg_per_stream() -> None:
    adapter = OkxAdapter()
    message = adapter.control_message("SUBSCRIBE", ["bbo-tbt:BTC-USDT", "bbo-tbt:ETH-USDT"], 7)
    assert orjson.loads(message) == {
        "op": "subscribe",
        "args": [
            {"channel": "bbo-tbt", "instId": "BTC-USDT"},
            {"channel": "bbo-tbt", "instId": "ETH-USDT"},
        ],
    }
    assert orjson.loads(adapter.control_message("UNSUBSCRIBE", ["bbo-tbt:BTC-USDT"], 8))["op"] == (
        "unsubscribe"
    )
    url, rest = adapter.open_url(["bbo-tbt:BTC-USDT"])
    assert url == "wss://ws.okx.com:8443/ws/v5/public" and rest == ("bbo-tbt:BTC-USDT",)


def test_the_heartbeat_and_limits_are_okx_s() -> None:
    adapter = OkxAdapter()
    assert (adapter.app_heartbeat.message, adapter.app_heartbeat.answer) == ("ping", "pong")
    assert LIMITS.max_idle == 30.0
    assert (LIMITS.max_connects, LIMITS.connect_window) == (3, 1.0)
