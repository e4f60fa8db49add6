"""Control messages over the socket: Binance's answers and its documented error messages."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from conftest import MakeSim
from sim_helpers import ask, collect, ended, next_json, reply, wait_until

from foxtrot_stream_binance.simulator import Simulator

EXPECTED = "`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`"


@pytest.fixture
async def sim(make_sim: MakeSim) -> Simulator:
    return await make_sim(incoming_limit=1000)  # the limit has its own tests


async def test_subscribe_list_unsubscribe_and_properties(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(f"{sim.ws_url}/ws") as ws:
        streams = ["btcusdt@bookTicker", "ethusdt@trade"]
        sub = {"method": "SUBSCRIBE", "params": streams, "id": 1}
        assert await ask(ws, sub) == {"result": None, "id": 1}
        listed = await ask(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 3})
        assert listed == {"result": streams, "id": 3}
        unsub = {"method": "UNSUBSCRIBE", "params": ["ethusdt@trade"], "id": 312}
        assert await ask(ws, unsub) == {"result": None, "id": 312}
        listed = await ask(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 4})
        assert listed == {"result": ["btcusdt@bookTicker"], "id": 4}
        get = {"method": "GET_PROPERTY", "params": ["combined"], "id": 2}
        assert await ask(ws, get) == {"result": False, "id": 2}  # /ws: raw
        set_ = {"method": "SET_PROPERTY", "params": ["combined", True], "id": 5}
        assert await ask(ws, set_) == {"result": None, "id": 5}
        assert await ask(ws, get) == {"result": True, "id": 2}
        frame = await next_json(ws)
        while "stream" not in frame:  # raw frames sent before the switch
            frame = await next_json(ws)
        assert frame["stream"] == "btcusdt@bookTicker" and frame["data"]["s"] == "BTCUSDT"
    await wait_until(lambda: not sim.clients)
    assert sim.stats.subscribe_requests == [(1, 2)]
    assert sim.stats.connections[1].subscriptions == [tuple(streams)]


@pytest.mark.parametrize("request_id", ["abc-123", None, -(2**63), 2**63 - 1, "x" * 36])
async def test_request_ids_are_echoed(
    sim: Simulator, http: aiohttp.ClientSession, request_id: Any
) -> None:
    async with http.ws_connect(f"{sim.ws_url}/ws") as ws:
        answer = await ask(ws, {"method": "LIST_SUBSCRIPTIONS", "id": request_id})
    assert answer == {"result": [], "id": request_id}


def _error(code: int, msg: str, request_id: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "msg": msg}, "id": request_id}


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ("not json", _error(3, "Invalid JSON: expected value at line 1 column 1")),
        ('{"id": 1,\n "method": }', _error(3, "Invalid JSON: expected value at line 2 column 12")),
        (
            '{"method":"SUBSCRIB","params":[],"id":7}',
            _error(
                2,
                f"Invalid request: unknown variant `SUBSCRIB`, expected one of {EXPECTED} "
                "at line 1 column 20",
                7,
            ),
        ),
        (
            '{"params":[],"id":4}',
            _error(2, "Invalid request: missing field `method` at line 1 column 20", 4),
        ),
        (
            '{"method":"LIST_SUBSCRIPTIONS","id":true}',
            _error(2, "Invalid request: request ID must be an unsigned integer"),
        ),
        (
            '{"method":"LIST_SUBSCRIPTIONS","id":1.5}',
            _error(2, "Invalid request: request ID must be an unsigned integer"),
        ),
        (
            '{"method":"LIST_SUBSCRIPTIONS","id":"' + "x" * 37 + '"}',
            _error(2, "Invalid request: request ID must be an unsigned integer"),
        ),
        (
            '{"method":"LIST_SUBSCRIPTIONS"}',
            _error(2, "Invalid request: request ID must be an unsigned integer"),
        ),
        (
            '{"method":"SET_PROPERTY","params":["compressed",true],"id":9}',
            _error(0, "Unknown property", 9),
        ),
        (
            '{"method":"SET_PROPERTY","params":["combined","yes"],"id":10}',
            _error(1, "Invalid value type: expected Boolean", 10),
        ),
        (
            '{"method":"GET_PROPERTY","params":[1],"id":11}',
            _error(2, "Invalid request: property name must be a string", 11),
        ),
        (
            '{"method":"GET_PROPERTY","params":[],"id":12}',
            _error(2, "Invalid request: property name must be a string", 12),
        ),
        (
            '{"method":"GET_PROPERTY","params":["combined",true],"id":13}',
            _error(2, "Invalid request: too many parameters", 13),
        ),
    ],
)
async def test_errors_are_nested_with_the_request_id_and_keep_the_connection(
    sim: Simulator, http: aiohttp.ClientSession, sent: str, expected: dict[str, Any]
) -> None:
    async with http.ws_connect(f"{sim.ws_url}/ws") as ws:
        assert await ask(ws, sent) == expected
        assert await ask(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 99}) == {"result": [], "id": 99}


@pytest.mark.parametrize("bad", ["nosuchusdt@bookTicker", "BTCUSDT@bookTicker", "btcusdt@depth"])
async def test_an_invalid_stream_is_answered_then_the_connection_closed(
    sim: Simulator, http: aiohttp.ClientSession, bad: str
) -> None:
    async with http.ws_connect(f"{sim.ws_url}/ws") as ws:
        request = {"method": "SUBSCRIBE", "params": ["ethusdt@bookTicker", bad], "id": 7}
        assert await ask(ws, request) == _error(2, "Invalid request: invalid stream", 7)
        end = await ended(ws)
    assert end.type is aiohttp.WSMsgType.CLOSE and end.data == 1008
    await wait_until(lambda: not sim.clients)
    assert sim.stats.connections[1].close_reason == "invalid stream"
    assert "ethusdt@bookTicker" not in sim.server.subscribers  # the batch took nothing


async def test_stream_limit_per_connection(make_sim: MakeSim, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(synthetic=600, rate=0.0, incoming_limit=1000)
    names = [f"{s.lower()}@{kind}" for s in sim.paths for kind in ("bookTicker", "trade")]
    async with http.ws_connect(f"{sim.ws_url}/ws") as ws:
        first = {"method": "SUBSCRIBE", "params": names[:1000], "id": 1}
        assert await ask(ws, first) == {"result": None, "id": 1}
        second = {"method": "SUBSCRIBE", "params": names[1000:1024], "id": 2}
        assert await ask(ws, second) == {"result": None, "id": 2}
        over = {"method": "SUBSCRIBE", "params": names[1024:1025], "id": 3}
        assert await ask(ws, over) == _error(2, "Invalid request: too many streams", 3)
        again = {"method": "SUBSCRIBE", "params": names[:5], "id": 4}  # already held: fine
        assert await ask(ws, again) == {"result": None, "id": 4}
        listed = await ask(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 5})
        assert len(listed["result"]) == 1024
    assert sim.stats.max_streams_per_connection == 1024


async def test_stream_limit_in_the_url(make_sim: MakeSim, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(max_streams=3)
    ok = "btcusdt@bookTicker/btcusdt@trade/ethusdt@trade"
    async with http.ws_connect(f"{sim.ws_url}/stream?streams={ok}") as ws:
        assert await collect(ws, 0.05)
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        await http.ws_connect(f"{sim.ws_url}/stream?streams={ok}/ethusdt@bookTicker")
    assert err.value.status == 400


async def test_answers_keep_their_order_among_data_frames(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(f"{sim.ws_url}/stream?streams=btcusdt@bookTicker") as ws:
        for i in range(20):
            await ws.send_str(f'{{"method":"LIST_SUBSCRIPTIONS","id":{i}}}')
        ids = [(await reply(ws))["id"] for _ in range(20)]
    assert ids == list(range(20))
