"""Control messages sent over the socket (`SUBSCRIBE` …): parsing and Binance's error answers.

Binance's stream servers deserialise requests with serde, so their messages carry serde's
wording and a line/column position; the documented ones are reproduced exactly. Errors are
sent nested with the request id (`{"error":{"code":2,"msg":…},"id":7}`), as live servers do.
"""

from __future__ import annotations

import re
from typing import Any

import attrs
import orjson

METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
PROPERTIES = ("combined",)
RequestId = int | str | None
_ID = re.compile(r"^[A-Za-z0-9_-]{1,36}$")
_METHOD_VALUE = re.compile(r'"method"\s*:\s*("(?:[^"\\]|\\.)*")')

BAD_ID = "Invalid request: request ID must be an unsigned integer"
BAD_PROPERTY_NAME = "Invalid request: property name must be a string"
TOO_MANY_PARAMS = "Invalid request: too many parameters"
INVALID_STREAM = "Invalid request: invalid stream"
TOO_MANY_STREAMS = "Invalid request: too many streams"
REFUSED = "Invalid request: refused"
"""`refuse_subscriptions`' answer (a scripted fault, not a documented Binance message)."""


@attrs.frozen
class Request:
    """A well-formed request. `params` is validated for the method (streams are checked later,
    against the listed symbols)."""

    method: str
    id: RequestId
    params: tuple[Any, ...] = ()


@attrs.frozen
class Error:
    id: RequestId
    code: int
    msg: str

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "msg": self.msg}, "id": self.id}


def result(request_id: RequestId, value: Any = None) -> dict[str, Any]:
    return {"result": value, "id": request_id}


def _position(text: str, index: int) -> tuple[int, int]:
    """serde's 1-based (line, column) of the character at `index`."""
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def _valid_id(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    return isinstance(value, str) and _ID.match(value) is not None


def parse(text: str) -> Request | Error:
    try:
        msg = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        line, column = _position(text, exc.pos)
        return Error(None, 3, f"Invalid JSON: expected value at line {line} column {column}")
    end = _position(text, max(len(text.rstrip()) - 1, 0))
    if not isinstance(msg, dict):
        return Error(
            None, 2, f"Invalid request: expected a request object at line {end[0]} column {end[1]}"
        )
    request_id = msg.get("id")
    if not _valid_id(request_id):
        return Error(None, 2, BAD_ID)
    method = msg.get("method")
    if method is None:
        return Error(
            request_id,
            2,
            f"Invalid request: missing field `method` at line {end[0]} column {end[1]}",
        )
    if method not in METHODS:
        return _unknown_method(text, method, request_id)
    if "id" not in msg:
        return Error(None, 2, BAD_ID)
    params = msg.get("params", [])
    if not isinstance(params, list):
        return Error(request_id, 2, "Invalid request: params must be an array")
    if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
        if not all(isinstance(p, str) for p in params):
            return Error(request_id, 2, INVALID_STREAM)
        return Request(method, request_id, tuple(params))
    if method == "LIST_SUBSCRIPTIONS":
        return Request(method, request_id)
    return _property(method, request_id, params)


def _unknown_method(text: str, method: Any, request_id: RequestId) -> Error:
    m = _METHOD_VALUE.search(text)
    line, column = _position(text, m.end(1) - 1 if m else max(len(text.rstrip()) - 1, 0))
    variant = f"`{method}`" if isinstance(method, str) else orjson.dumps(method).decode()
    expected = ", ".join(f"`{name}`" for name in METHODS)
    return Error(
        request_id,
        2,
        f"Invalid request: unknown variant {variant}, expected one of {expected} "
        f"at line {line} column {column}",
    )


def _property(method: str, request_id: RequestId, params: list[Any]) -> Request | Error:
    arity = 2 if method == "SET_PROPERTY" else 1
    if len(params) > arity:
        return Error(request_id, 2, TOO_MANY_PARAMS)
    if not params or not isinstance(params[0], str):
        return Error(request_id, 2, BAD_PROPERTY_NAME)
    if params[0] not in PROPERTIES:
        return Error(request_id, 0, "Unknown property")
    if method == "SET_PROPERTY" and (len(params) < 2 or not isinstance(params[1], bool)):
        return Error(request_id, 1, "Invalid value type: expected Boolean")
    return Request(method, request_id, tuple(params))
