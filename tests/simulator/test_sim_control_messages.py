"""Control messages over the socket: the documented answers, ids and error codes 0-3."""

from __future__ import annotations

import json
import re
from typing import Any

import aiohttp
import pytest
from simwire import collect, read_json, request, running, stream_url, until_end

from foxtrot_stream_binance.simulator import synthetic_symbols

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


@pytest.mark.parametrize("request_id", [None, 0, -7, 2**63 - 1, -(2**63), "a", "Z" * 36, "a1B2"])
async def test_valid_ids_are_echoed(request_id: Any) -> None:
    async with (
        running(**ROOMY) as sim,
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{sim.ws_url}/ws") as ws,
    ):
        answer = await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": request_id})
        assert answer == {"result": [], "id": request_id}


@pytest.mark.parametrize("request_id", [1.5, True, [1], {"n": 1}, 2**63, "Z" * 37, "a b", "é"])
async def test_invalid_ids_are_error_2(request_id: Any) -> None:
    async with (
        running(**ROOMY) as sim,
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{sim.ws_url}/ws") as ws,
    ):
        text = json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": request_id})
        assert await request(ws, text, answer_id=None) == _error(2, BAD_ID, None)


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


async def test_unknown_method_names_the_variants() -> None:
    async with (
        running(**ROOMY) as sim,
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{sim.ws_url}/ws") as ws,
    ):
        answer = await request(ws, '{"method":"SUBSCRIBEE","params":[],"id":21}')
        assert answer["id"] == 21 and answer["error"]["code"] == 2
        msg = answer["error"]["msg"]
        prefix = f"Invalid request: unknown variant `SUBSCRIBEE`, expected one of {METHODS}"
        assert msg.startswith(prefix), msg
        # serde points at the end of the offending value
        assert msg[len(prefix) :] == " at line 1 column 22", msg

        answer = await request(ws, '{"params":[],"id":22}')
        assert answer["id"] == 22 and answer["error"]["code"] == 2
        assert re.fullmatch(
            r"Invalid request: missing field `method` at line 1 column \d+",
            answer["error"]["msg"],
        ), answer
        assert not ws.closed


@pytest.mark.parametrize(
    ("text", "where"),
    [("{not json", "line 1 column 2"), ("", "line 1 column 1"), ('\n\n  {"id":', "line 3")],
)
async def test_invalid_json_is_error_3(text: str, where: str) -> None:
    async with (
        running(**ROOMY) as sim,
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{sim.ws_url}/ws") as ws,
    ):
        answer = await request(ws, text)
        assert answer["id"] is None and answer["error"]["code"] == 3, answer
        msg = answer["error"]["msg"]
        assert re.fullmatch(r"Invalid JSON: expected value at line \d+ column \d+", msg), msg
        assert where in msg, msg
        assert await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 1}) == {
            "result": [],
            "id": 1,
        }


@pytest.mark.parametrize(
    "bad",
    ["nosuchusdt@trade", "BTCUSDT@trade", "btcusdt@bookticker", "btcusdt@depth7", "btcusdt"],
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
        assert ending.clean
        assert sim.stats.connections[1].close_reason == "invalid stream"


async def test_1024_streams_at_most() -> None:
    # 3 streams per symbol: 342 synthetic symbols give 1026 names
    names = [
        f"{s.lower()}@{kind}"
        for s in synthetic_symbols(342)
        for kind in ("bookTicker", "trade", "aggTrade")
    ]
    async with (
        running(symbols=("BTCUSDT",), synthetic=342, rate=0.0) as sim,
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
            assert answer["id"] == 4 and answer["error"]["code"] == 2, answer
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
