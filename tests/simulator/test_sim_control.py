"""Control messages over the socket: the documented answers, ids and error codes 0-3."""

from __future__ import annotations

import json
import re
from typing import Any

import aiohttp
import pytest

from foxtrot_stream_binance.simulator import synthetic_symbols

from simwire import (
    ask,
    collect,
    eventually,
    read_json,
    reply,
    request,
    running,
    stream_url,
    until_end,
)

METHODS = "`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`"
BAD_ID = "Invalid request: request ID must be an unsigned integer"
# the limit on incoming messages has its own tests
ROOMY = {"symbols": ("BTCUSDT", "ETHUSDT"), "rate": 50.0, "incoming_limit": 1000}


def _error(code: int, msg: str, request_id: Any) -> dict[str, Any]:
    return {"error": {"code": code, "msg": msg}, "id": request_id}


async def test_subscribe_list_unsubscribe_as_documented() -> None:
    async with (
        running(**ROOMY) as sim,
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{sim.ws_url}/ws") as ws,
    ):
        assert await collect(ws, 0.1) == []  # a bare connection gets nothing
        sub = {"method": "SUBSCRIBE", "params": ["btcusdt@bookTicker", "btcusdt@trade"]}
        assert await request(ws, sub | {"id": 1}) == {"result": None, "id": 1}
        listed = await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 3})
        assert listed == {"result": ["btcusdt@bookTicker", "btcusdt@trade"], "id": 3}
        frame = await read_json(ws)
        assert set(frame) in ({"u", "s", "b", "B", "a", "A"}, set("eEstpqTmM"))  # raw form

        unsub = {"method": "UNSUBSCRIBE", "params": ["btcusdt@bookTicker"], "id": 312}
        assert await request(ws, unsub) == {"result": None, "id": 312}
        # answers leave in order with the data: nothing of the stream after its answer
        after = [json.loads(f) for f in await collect(ws, 0.25)]
        assert all(f.get("e") == "trade" for f in after), after
        listed = await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 4})
        assert listed == {"result": ["btcusdt@trade"], "id": 4}
        # unsubscribing what is not subscribed is not an error
        unsub = {"method": "UNSUBSCRIBE", "params": ["ethusdt@trade"], "id": 5}
        assert await request(ws, unsub) == {"result": None, "id": 5}
        await ws.close()
        await eventually(lambda: not sim.clients)
        assert sim.stats.subscribe_requests == [(1, 2)]
        assert sim.stats.connections[1].subscriptions == [("btcusdt@bookTicker", "btcusdt@trade")]


async def test_combined_property_switches_the_envelope() -> None:
    async with running(**ROOMY) as sim, aiohttp.ClientSession() as http:
        async with http.ws_connect(stream_url(sim, "btcusdt@bookTicker")) as ws:
            got = await request(ws, {"method": "GET_PROPERTY", "params": ["combined"], "id": 2})
            assert got == {"result": True, "id": 2}
            set_off = {"method": "SET_PROPERTY", "params": ["combined", False], "id": 5}
            assert await request(ws, set_off) == {"result": None, "id": 5}
            assert "stream" not in await read_json(ws)
        async with http.ws_connect(stream_url(sim, "btcusdt@bookTicker", combined=False)) as ws:
            got = await request(ws, {"method": "GET_PROPERTY", "params": ["combined"], "id": 2})
            assert got == {"result": False, "id": 2}
            set_on = {"method": "SET_PROPERTY", "params": ["combined", True], "id": 5}
            assert await request(ws, set_on) == {"result": None, "id": 5}
            frame = await read_json(ws)
            assert set(frame) == {"stream", "data"} and frame["stream"] == "btcusdt@bookTicker"
            got = await request(ws, {"method": "GET_PROPERTY", "params": ["combined"], "id": "x9"})
            assert got == {"result": True, "id": "x9"}


VALID_IDS = [None, 0, -7, 2**63 - 1, -(2**63), "a", "abc-123", "Z" * 36, "a1B2"]
INVALID_IDS = [1.5, True, [1], {"n": 1}, 2**63, "Z" * 37, "a b", "é"]


async def test_valid_ids_are_echoed_and_invalid_ones_are_error_2() -> None:
    async with (
        running(**ROOMY) as sim,
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{sim.ws_url}/ws") as ws,
    ):
        for request_id in VALID_IDS:
            answer = await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": request_id})
            assert answer == {"result": [], "id": request_id}
        for request_id in INVALID_IDS:
            text = json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": request_id})
            assert await ask(ws, text) == _error(2, BAD_ID, None), request_id
        # a missing id is invalid too
        assert await ask(ws, '{"method":"LIST_SUBSCRIPTIONS"}') == _error(2, BAD_ID, None)
        assert not ws.closed


async def test_documented_errors_keep_the_connection() -> None:
    async with running(**ROOMY) as sim, aiohttp.ClientSession() as http:
        async with http.ws_connect(stream_url(sim, "btcusdt@bookTicker")) as ws:
            cases: list[tuple[dict[str, Any], dict[str, Any]]] = [
                (
                    {"method": "GET_PROPERTY", "params": ["colour"], "id": 7},
                    _error(0, "Unknown property", 7),
                ),
                (
                    {"method": "SET_PROPERTY", "params": ["colour", True], "id": 8},
                    _error(0, "Unknown property", 8),
                ),
                (
                    {"method": "SET_PROPERTY", "params": ["combined", "yes"], "id": 9},
                    _error(1, "Invalid value type: expected Boolean", 9),
                ),
                (
                    {"method": "SET_PROPERTY", "params": ["combined", 1], "id": 10},
                    _error(1, "Invalid value type: expected Boolean", 10),
                ),
                (
                    {"method": "GET_PROPERTY", "params": ["combined", True], "id": 11},
                    _error(2, "Invalid request: too many parameters", 11),
                ),
                (
                    {"method": "SET_PROPERTY", "params": ["combined", True, 1], "id": 12},
                    _error(2, "Invalid request: too many parameters", 12),
                ),
                (
                    {"method": "GET_PROPERTY", "params": [1], "id": 13},
                    _error(2, "Invalid request: property name must be a string", 13),
                ),
                (
                    {"method": "GET_PROPERTY", "params": [], "id": 14},
                    _error(2, "Invalid request: property name must be a string", 14),
                ),
            ]
            for body, expected in cases:
                assert await request(ws, body) == expected, body
            # nothing above changed the property, and the connection is still serving
            got = await request(ws, {"method": "GET_PROPERTY", "params": ["combined"], "id": 15})
            assert got == {"result": True, "id": 15}
            assert (await read_json(ws))["stream"] == "btcusdt@bookTicker"
            assert not ws.closed
        assert sim.stats.connections[1].close_reason == "client"


SYNTAX_ERRORS: list[tuple[str, dict[str, Any]]] = [
    ("not json", _error(3, "Invalid JSON: expected value at line 1 column 1", None)),
    ("{not json", _error(3, "Invalid JSON: expected value at line 1 column 2", None)),
    ("", _error(3, "Invalid JSON: expected value at line 1 column 1", None)),
    (
        '{"id": 1,\n "method": }',
        _error(3, "Invalid JSON: expected value at line 2 column 12", None),
    ),
    (
        '{"method":"SUBSCRIB","params":[],"id":7}',
        _error(
            2,
            f"Invalid request: unknown variant `SUBSCRIB`, expected one of {METHODS} "
            "at line 1 column 20",
            7,
        ),
    ),
    (
        '{"method":"SUBSCRIBEE","params":[],"id":21}',
        _error(
            2,
            f"Invalid request: unknown variant `SUBSCRIBEE`, expected one of {METHODS} "
            "at line 1 column 22",  # serde points at the end of the offending value
            21,
        ),
    ),
    (
        '{"params":[],"id":4}',
        _error(2, "Invalid request: missing field `method` at line 1 column 20", 4),
    ),
    (
        '{"method":"SET_PROPERTY","params":["compressed",true],"id":9}',
        _error(0, "Unknown property", 9),
    ),
]


async def test_syntax_errors_are_answered_exactly_and_keep_the_connection() -> None:
    async with (
        running(**ROOMY) as sim,
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{sim.ws_url}/ws") as ws,
    ):
        for text, expected in SYNTAX_ERRORS:
            assert await ask(ws, text) == expected, text
        # where the JSON ends early, the position is that of the end
        answer = await ask(ws, '\n\n  {"id":')
        assert answer["id"] is None and answer["error"]["code"] == 3, answer
        msg = answer["error"]["msg"]
        assert re.fullmatch(r"Invalid JSON: expected value at line 3 column \d+", msg), msg
        assert await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 1}) == {
            "result": [],
            "id": 1,
        }
        assert not ws.closed


@pytest.mark.parametrize(
    "bad",
    [
        "nosuchusdt@trade",
        "BTCUSDT@trade",
        "btcusdt@bookticker",
        "btcusdt@depth",
        "btcusdt@depth7",
        "btcusdt",
    ],
)
async def test_invalid_stream_is_a_nested_error_then_a_close(bad: str) -> None:
    async with running(**ROOMY) as sim, aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{sim.ws_url}/ws") as ws:
            body = {"method": "SUBSCRIBE", "params": ["ethusdt@bookTicker", bad], "id": 7}
            await ws.send_str(json.dumps(body))
            ending = await until_end(ws)
        # the answer first, nothing of the batch's valid stream, then the close
        assert [json.loads(f) for f in ending.frames] == [
            _error(2, "Invalid request: invalid stream", 7)
        ]
        assert ending.clean and ending.code == 1008
        assert sim.stats.connections[1].close_reason == "invalid stream"
        assert "ethusdt@bookTicker" not in sim.server.subscribers  # the batch took nothing


async def test_1024_streams_at_most() -> None:
    # 3 streams per symbol: 342 synthetic symbols give 1026 names
    names = [
        f"{s.lower()}@{kind}"
        for s in synthetic_symbols(342)
        for kind in ("bookTicker", "trade", "aggTrade")
    ]
    async with (
        # no pings: this test spends its 5 incoming messages a second on requests (with the
        # FAST pings every 0.3 s, the answers to them would break the limit on a slow machine)
        running(symbols=("BTCUSDT",), synthetic=342, rate=0.0, ping_interval=60.0) as sim,
        aiohttp.ClientSession() as http,
    ):
        async with http.ws_connect(f"{sim.ws_url}/ws") as ws:
            first = {"method": "SUBSCRIBE", "params": names[:1000], "id": 1}
            assert await request(ws, first) == {"result": None, "id": 1}
            more = {"method": "SUBSCRIBE", "params": names[1000:1024], "id": 2}
            assert await request(ws, more) == {"result": None, "id": 2}
            # again the same names: no new stream, so still allowed
            again = {"method": "SUBSCRIBE", "params": names[:3], "id": 3}
            assert await request(ws, again) == {"result": None, "id": 3}
            one_more = {"method": "SUBSCRIBE", "params": [names[1024]], "id": 4}
            answer = await request(ws, one_more)
            assert answer == _error(2, "Invalid request: too many streams", 4)
            listed = await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 5})
            assert listed["result"] == names[:1024]
        async with http.ws_connect(f"{sim.ws_url}/ws") as ws:
            at_once = {"method": "SUBSCRIBE", "params": names[:1025], "id": 6}
            answer = await request(ws, at_once)
            assert answer["id"] == 6 and answer["error"]["code"] == 2, answer
            assert await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 7}) == {
                "result": [],
                "id": 7,
            }
    assert sim.stats.max_streams_per_connection == 1024


async def test_too_many_streams_in_the_url_are_refused() -> None:
    async with (
        running(symbols=("BTCUSDT", "ETHUSDT"), max_streams=3) as sim,
        aiohttp.ClientSession() as http,
    ):
        names = ["btcusdt@bookTicker", "btcusdt@trade", "ethusdt@bookTicker", "ethusdt@trade"]
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(stream_url(sim, *names))
        assert refused.value.status == 400
        async with http.ws_connect(stream_url(sim, *names[:3])) as ws:
            listed = await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 1})
            assert listed == {"result": names[:3], "id": 1}


async def test_answers_keep_their_order_among_data_frames() -> None:
    async with (
        running(**ROOMY) as sim,
        aiohttp.ClientSession() as http,
        http.ws_connect(stream_url(sim, "btcusdt@bookTicker")) as ws,
    ):
        for i in range(20):
            await ws.send_str(f'{{"method":"LIST_SUBSCRIPTIONS","id":{i}}}')
        ids = [(await reply(ws))["id"] for _ in range(20)]
    assert ids == list(range(20))
