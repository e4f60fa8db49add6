"""Golden frames from the field lists of Binance's documentation decode to the expected ticks."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from foxtrot_stream.contract.model import Tick, TransportKind
from foxtrot_stream_binance.adapter import BinanceAdapter

# The documentation's own examples (web-socket-streams.md), as sent on a raw /ws/ stream.
BOOK = b'{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}'  # noqa: E501
TRADE = b'{"e":"trade","E":1672515782136,"s":"BNBUSDT","t":12345,"p":"25.36000000","q":"100","T":1672515782134,"m":true,"M":true}'  # noqa: E501


class Events:
    def __init__(self) -> None:
        self.responses: list[tuple[int, str | None]] = []
        self.malformed_frames: list[tuple[str, str | bytes]] = []
        self.shutdowns = 0

    def control_response(self, request_id: int, error: str | None) -> None:
        self.responses.append((request_id, error))

    def malformed(self, reason: str, frame: str | bytes) -> None:
        self.malformed_frames.append((reason, frame))

    def server_shutdown(self) -> None:
        self.shutdowns += 1


@pytest.fixture
def decode() -> tuple[list[Tick], Events, object]:
    ticks: list[Tick] = []
    events = Events()
    handler = BinanceAdapter().make_handler(ticks.append, events)
    return ticks, events, handler


def combined(stream: str, payload: bytes) -> bytes:
    return b'{"stream":"' + stream.encode() + b'","data":' + payload + b"}"


def test_book_ticker(decode) -> None:  # type: ignore[no-untyped-def]
    ticks, events, handler = decode
    handler(BOOK, 123)
    assert ticks == [
        Tick(
            "binance",
            "BNBUSDT",
            25.3519,
            31.21,
            25.3652,
            40.66,
            None,
            400900217,
            None,
            None,
            123,
            TransportKind.WEBSOCKET,
        )
    ]
    assert events.malformed_frames == []


def test_trade_after_book_carries_last_and_event_time(decode) -> None:  # type: ignore[no-untyped-def]
    ticks, _events, handler = decode
    handler(combined("bnbusdt@bookTicker", BOOK), 1)
    handler(combined("bnbusdt@trade", TRADE), 2)
    assert len(ticks) == 2
    t = ticks[1]
    assert (t.bid, t.ask, t.last, t.seq, t.trade_id, t.exchange_ts, t.received_ts) == (
        25.3519,
        25.3652,
        25.36,
        400900217,
        12345,
        1672515782136,
        2,
    )


def test_trade_before_any_book_gives_no_tick_until_the_book(decode) -> None:  # type: ignore[no-untyped-def]
    ticks, events, handler = decode
    handler(TRADE, 1)
    assert ticks == []
    handler(BOOK, 2)
    assert ticks[0].last == 25.36
    assert events.malformed_frames == []


def test_replayed_book_never_moves_state_backwards(decode) -> None:  # type: ignore[no-untyped-def]
    ticks, _e, handler = decode
    newer = BOOK.replace(b"400900217", b"400900218").replace(b"25.35190000", b"25.40000000")
    handler(newer, 1)
    handler(BOOK, 2)  # an older frame, e.g. from the other connection during a rotation
    assert ticks[-1].seq == 400900218
    assert ticks[-1].bid == 25.4


def test_control_responses_both_forms(decode) -> None:  # type: ignore[no-untyped-def]
    _t, events, handler = decode
    handler('{"result":null,"id":1}', 0)
    handler('{"result":["btcusdt@trade"],"id":3}', 0)
    handler('{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":7}', 0)
    handler('{"code":2,"msg":"Invalid request: unknown variant","id":8}', 0)
    assert events.responses == [
        (1, None),
        (3, None),
        (7, "code 2: Invalid request: invalid stream"),
        (8, "code 2: Invalid request: unknown variant"),
    ]


def test_server_shutdown_raw_and_combined(decode) -> None:  # type: ignore[no-untyped-def]
    _t, events, handler = decode
    handler('{"e":"serverShutdown","E":1700000000000}', 0)
    handler('{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1700000000000}}', 0)
    # a field the notice does not need, of an unexpected type, does not hide the notice
    handler('{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":"soon"}}', 0)
    handler('{"e":"serverShutdown","s":5}', 0)
    assert events.shutdowns == 4
    assert events.malformed_frames == []


def test_a_late_copy_after_the_symbol_is_forgotten_carries_its_own_receive_time(
    decode,  # type: ignore[no-untyped-def]
) -> None:
    # An older frame still goes to the sink (the sequencer counts it as a duplicate), as a
    # tick stamped with its own receive time, never the stored tick with an older stamp.
    ticks, _events, handler = decode
    handler(combined("bnbusdt@bookTicker", BOOK), 1)
    handler(combined("bnbusdt@trade", TRADE), 2)
    handler(combined("bnbusdt@bookTicker", BOOK), 3)
    handler(combined("bnbusdt@trade", TRADE), 4)
    assert [(t.received_ts, t.exchange_ts) for t in ticks] == [
        (1, None),
        (2, 1672515782136),
        (3, None),
        (4, 1672515782136),
    ]
    assert {(t.seq, t.trade_id, t.bid, t.last) for t in ticks[1:]} == {
        (400900217, 12345, 25.3519, 25.36)
    }


@pytest.mark.parametrize(
    "frame",
    [
        b"not json",
        b"[1,2,3]",
        b"42",
        b'{"stream":"bnbusdt@bookTicker"}',
        b'{"stream":"bnbusdt@bookTicker","data":[1]}',
        BOOK.replace(b'"25.35190000"', b'"abc"'),
        BOOK.replace(b"400900217", b'"4009x0217"'),
        BOOK.replace(b"400900217", b"4009002.5"),
        BOOK.replace(b"400900217", b"true"),
        BOOK.replace(b'"B":"31.21000000",', b""),
        BOOK.replace(b'"25.35190000"', b'"1e400"'),
        # nested beyond any decoder's recursion limit: at the top, in data, in an unread field
        b"[" * 5000 + b"]" * 5000,
        combined("bnbusdt@bookTicker", b'{"x":' + b"[" * 5000 + b"]" * 5000 + b"}"),
        BOOK.replace(b'"s":', b'"deep":' + b"[" * 5000 + b"]" * 5000 + b',"s":'),
        BOOK.replace(b'"s":"BNBUSDT",', b""),
        TRADE.replace(b'"t":12345', b'"t":"x"'),
        TRADE.replace(b'"p":"25.36000000",', b""),
        b'{"e":"kline","s":"BNBUSDT"}',
        b'{"stream":"bnbusdt@unknown","data":{"x":1}}',
        b"",
        # text frames reach the handler as undecoded bytes (ws_connect(decode_text=False)):
        # invalid UTF-8 is a malformed frame, not a dropped connection
        BOOK.replace(b'"s":"BNBUSDT"', b'"s":"BNB\xffUSDT"'),
    ],
)
def test_malformed_frames_are_reported_never_raised(decode, frame: bytes) -> None:  # type: ignore[no-untyped-def]
    ticks, events, handler = decode
    handler(frame, 0)
    assert ticks == []
    assert len(events.malformed_frames) == 1
    assert events.malformed_frames[0][1] == frame
    handler(BOOK, 1)  # and the stream goes on
    assert len(ticks) == 1


def test_a_quoted_integer_is_read_as_the_integer(decode) -> None:  # type: ignore[no-untyped-def]
    # Binance quotes prices and quantities; the decoder therefore reads numeric strings as
    # numbers (msgspec's strict=False) for every field, ids too. A quoted id is still exact.
    ticks, events, handler = decode
    handler(BOOK.replace(b"400900217", b'"400900217"'), 0)
    assert [t.seq for t in ticks] == [400900217]
    assert events.malformed_frames == []


def test_streams_urls_and_control_messages() -> None:
    a = BinanceAdapter()
    assert a.streams_for("BTCUSDT") == ("btcusdt@bookTicker", "btcusdt@trade")
    url, rest = a.open_url(["btcusdt@bookTicker", "btcusdt@trade"])
    assert url == "wss://stream.binance.com:9443/stream?streams=btcusdt@bookTicker/btcusdt@trade"
    assert rest == ()
    many = [f"s{i}usdt@trade" for i in range(250)]
    url, rest = a.open_url(many)
    assert url.count("@trade") == 100
    assert rest == tuple(many[100:])
    msg = orjson.loads(a.control_message("SUBSCRIBE", ["btcusdt@trade"], 7))
    assert msg == {"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 7}


# --- properties of the decode ------------------------------------------------------------------

decimal_text = st.one_of(
    # as Binance writes them: fixed point with 8 decimals
    st.decimals(min_value=0, max_value=10**12, places=8, allow_nan=False).map(lambda d: f"{d:.8f}"),
    # anything a float's repr or a decimal literal may look like
    st.floats(min_value=0, max_value=1e300, allow_nan=False).map(repr),
    st.from_regex(r"\A(0|[1-9][0-9]{0,19})\.[0-9]{1,30}\Z"),  # JSON: no leading 0s
)


@settings(max_examples=400, deadline=None)
@given(bid=decimal_text, ask=decimal_text)
def test_prices_decode_exactly_as_python_parses_them(bid: str, ask: str) -> None:
    # The decoder (msgspec, strict=False) parses the quoted numbers itself: it must give the
    # same double as float(), digit for digit, for every string Binance could send.
    ticks: list[Tick] = []
    handler = BinanceAdapter().make_handler(ticks.append, Events())
    handler(BOOK.replace(b"25.35190000", bid.encode()).replace(b"25.36520000", ask.encode()), 0)
    assert (ticks[0].bid, ticks[0].ask) == (float(bid), float(ask))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["book", "trade"]), st.integers(1, 30)),
        min_size=1,
        max_size=60,
    )
)
def test_merged_state_is_the_newest_book_and_the_newest_trade(
    frames: list[tuple[str, int]],
) -> None:
    # Frames in any order, repeats included (the overlap of two connections): every tick
    # carries the newest book and the newest trade seen so far, once a book is known.
    ticks: list[Tick] = []
    handler = BinanceAdapter().make_handler(ticks.append, Events())
    newest_book, newest_trade = 0, 0
    for kind, n in frames:
        if kind == "book":
            handler(combined("bnbusdt@bookTicker", BOOK.replace(b"400900217", b"%d" % n)), 0)
            newest_book = max(newest_book, n)
        else:
            handler(combined("bnbusdt@trade", TRADE.replace(b"12345", b"%d" % n)), 0)
            newest_trade = max(newest_trade, n)
        if newest_book:
            assert ticks[-1].seq == newest_book
            assert ticks[-1].trade_id == (newest_trade or None)
            assert ticks[-1].last == (25.36 if newest_trade else None)
