"""The one helper module of the simulator's tests: a running simulator with scaled-down
timings (`running`, and `config` for conftest's `make_sim`), polling, frame readers, and
payload validators written from `binance-protocol.md` (not from the simulator's code).
Every wait is bounded by a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import aiohttp
import attrs

from foxtrot_stream_binance.simulator import Simulator, SimulatorConfig

FAST: dict[str, Any] = {
    "ping_interval": 0.3,
    "pong_timeout": 0.6,
    "close_timeout": 0.3,
    "shutdown_grace": 0.1,
    "incoming_limit": 5,
}
"""Timings scaled down for tests (production: ping 20 s, pong timeout 60 s). A client's pongs
count against its 5 incoming messages a second: pings every 0.2 s would leave no margin for
a client that answers them late and then in a burst, so 0.3 s."""

MARKET: dict[str, Any] = {"symbols": ("BTCUSDT", "ETHUSDT", "BNBUSDT"), "rate": 50.0, "seed": 7}
"""The market of conftest's `make_sim`/`sim` fixtures."""


def config(**overrides: Any) -> SimulatorConfig:
    """FAST timings and the MARKET, `overrides` on top (what `make_sim` starts)."""
    return SimulatorConfig(**(FAST | MARKET | overrides))


def leftover_tasks() -> list[asyncio.Task[object]]:
    """Tasks a simulator started that are still alive."""
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("simulator-")]


_active = 0
"""Simulators started by `running` and not yet stopped (tests may nest several)."""


@contextlib.asynccontextmanager
async def running(**overrides: Any) -> AsyncIterator[Simulator]:
    """A started simulator (FAST timings, `overrides` on top); stopped on the way out, and
    once the last one is stopped, no simulator task may be left."""
    global _active
    sim = await Simulator(SimulatorConfig(**(FAST | overrides))).start()
    _active += 1
    try:
        yield sim
    finally:
        await sim.stop()
        _active -= 1
    if not _active:
        left = [repr(t) for t in leftover_tasks()]
        assert not left, left


DECIMAL = re.compile(r"^\d+\.\d+$")
BOOK_TICKER_KEYS = {"u", "s", "b", "B", "a", "A"}
TRADE_KEYS = {"e", "E", "s", "t", "p", "q", "T", "m", "M"}
STREAM = re.compile(r"^([a-z0-9]+)@(bookTicker|trade|aggTrade|depth(?:5|10|20)(?:@100ms)?)$")
ENDED = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)


async def eventually(
    condition: Callable[[], object], within: float = 2.0, what: str = "condition"
) -> None:
    """Poll `condition` every 10 ms until it is true; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {within} s")
        await asyncio.sleep(0.01)


# --- payload validators (from the protocol document) ------------------------------------------


def check_decimal(value: object, *, positive: bool = True) -> Decimal:
    assert isinstance(value, str), f"expected a decimal string, got {value!r}"
    assert DECIMAL.match(value), f"not a plain decimal string: {value!r}"
    number = Decimal(value)
    if positive:
        assert number > 0, value
    return number


def check_book_ticker(d: Any, symbol: str | None = None) -> None:
    """`<symbol>@bookTicker`: u int, s, b/B/a/A decimal strings, and no event time."""
    assert isinstance(d, dict), d
    assert set(d) == BOOK_TICKER_KEYS, f"bookTicker keys {sorted(d)}"
    assert type(d["u"]) is int and d["u"] > 0, d
    assert isinstance(d["s"], str) and d["s"].isupper(), d
    if symbol is not None:
        assert d["s"] == symbol, d
    bid, ask = check_decimal(d["b"]), check_decimal(d["a"])
    check_decimal(d["B"])
    check_decimal(d["A"])
    assert bid < ask, f"crossed book {d}"


def check_trade(d: Any, symbol: str | None = None) -> None:
    """`<symbol>@trade`: e="trade", E/T ms times, s, t int, p/q decimal strings, m/M bools."""
    assert isinstance(d, dict), d
    assert set(d) == TRADE_KEYS, f"trade keys {sorted(d)}"
    assert d["e"] == "trade", d
    now_ms = time.time() * 1000
    for key in ("E", "T"):
        assert type(d[key]) is int, d
        assert abs(d[key] - now_ms) < 60_000, f"{key} is not a millisecond time: {d}"
    assert d["T"] <= d["E"], d
    assert isinstance(d["s"], str) and d["s"].isupper(), d
    if symbol is not None:
        assert d["s"] == symbol, d
    assert type(d["t"]) is int and d["t"] > 0, d
    check_decimal(d["p"])
    check_decimal(d["q"])
    assert type(d["m"]) is bool and type(d["M"]) is bool, d


def check_combined(frame: Any) -> tuple[str, str, Any]:
    """A combined-stream envelope: returns (symbol in upper case, stream kind, payload)."""
    assert isinstance(frame, dict) and set(frame) == {"stream", "data"}, frame
    m = STREAM.match(frame["stream"])
    assert m is not None, f"bad stream name {frame['stream']!r}"
    symbol, kind = m.group(1).upper(), m.group(2)
    if kind == "bookTicker":
        check_book_ticker(frame["data"], symbol)
    elif kind == "trade":
        check_trade(frame["data"], symbol)
    return symbol, kind, frame["data"]


def well_formed(text: str | bytes, combined: bool) -> bool:
    """Whether a data frame passes the validators above (bookTicker or trade)."""
    try:
        frame = json.loads(text)
        if combined:
            check_combined(frame)
        elif isinstance(frame, dict) and frame.get("e") == "trade":
            check_trade(frame)
        else:
            check_book_ticker(frame)
    except (AssertionError, ValueError, TypeError, KeyError, AttributeError):
        return False
    return True


def strictly_increasing(values: list[int]) -> bool:
    return all(a < b for a, b in itertools.pairwise(values))


# --- reading from an aiohttp client WebSocket -----------------------------------------------


@attrs.define
class Ending:
    """How a connection ended, as the client saw it."""

    clean: bool
    """A close frame arrived (False: the TCP connection just ended)."""
    code: int | None
    reason: str
    frames: list[str]
    """Text frames received before the end."""
    pings: int
    at: float
    """time.monotonic() when the end was seen."""


async def read_json(ws: aiohttp.ClientWebSocketResponse, within: float = 1.0) -> Any:
    """The next text frame, decoded (pings and pongs, if delivered, are skipped)."""
    deadline = time.monotonic() + within
    while True:
        msg = await ws.receive(timeout=max(0.001, deadline - time.monotonic()))
        if msg.type is aiohttp.WSMsgType.TEXT:
            return json.loads(msg.data)
        if msg.type in ENDED:
            raise AssertionError(f"connection ended while waiting for a frame: {msg}")


async def reply_to(
    ws: aiohttp.ClientWebSocketResponse, request_id: Any, within: float = 1.0
) -> Any:
    """Skip data frames until the answer carrying `request_id` arrives."""
    deadline = time.monotonic() + within
    while True:
        frame = await read_json(ws, max(0.001, deadline - time.monotonic()))
        if isinstance(frame, dict) and "id" in frame and ("result" in frame or "error" in frame):
            assert frame["id"] == request_id, frame
            return frame


async def request(
    ws: aiohttp.ClientWebSocketResponse, body: dict[str, Any] | str, answer_id: Any = ...
) -> Any:
    """Send a control message (an object, or text as is); return the answer that carries
    `answer_id` (by default the request's own id; None for text that is not an object)."""
    await ws.send_str(body if isinstance(body, str) else json.dumps(body))
    if answer_id is ...:
        if isinstance(body, str):
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
            answer_id = parsed.get("id") if isinstance(parsed, dict) else None
        else:
            answer_id = body.get("id")
    return await reply_to(ws, answer_id)


PATIENCE = 2.0
"""How much longer `collect(…, at_least=N)` waits for its N frames past its window."""


async def collect(
    ws: aiohttp.ClientWebSocketResponse, seconds: float, at_least: int = 0
) -> list[str]:
    """Every text frame received within `seconds` (fails if the connection ends); with
    `at_least`, past them until there are that many, for up to `PATIENCE` seconds more: a test
    process paused by a loaded machine gets its frames late, and a count over a fixed window
    would come up short although nothing was lost."""
    frames: list[str] = []
    deadline = time.monotonic() + seconds
    patience = deadline + PATIENCE
    while (left := deadline - time.monotonic()) > 0 or (
        len(frames) < at_least and (left := patience - time.monotonic()) > 0
    ):
        try:
            msg = await ws.receive(timeout=left)
        except TimeoutError:
            break
        if msg.type is aiohttp.WSMsgType.TEXT:
            frames.append(msg.data)
        elif msg.type in ENDED:
            raise AssertionError(f"connection ended while collecting: {msg}")
    return frames


async def until_end(ws: aiohttp.ClientWebSocketResponse, within: float = 2.0) -> Ending:
    """Read until the connection ends; fail if it is still open after `within` seconds."""
    frames: list[str] = []
    pings = 0
    deadline = time.monotonic() + within
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"connection still open after {within} s")
        try:
            msg = await ws.receive(timeout=left)
        except TimeoutError:
            continue
        if msg.type is aiohttp.WSMsgType.TEXT:
            frames.append(msg.data)
        elif msg.type is aiohttp.WSMsgType.PING:
            pings += 1
        elif msg.type is aiohttp.WSMsgType.CLOSE:
            return Ending(True, msg.data, msg.extra or "", frames, pings, time.monotonic())
        elif msg.type in ENDED:
            return Ending(False, ws.close_code, "", frames, pings, time.monotonic())


@attrs.define
class Seen:
    """What an `autoping=False` client saw for a while."""

    frames: list[str] = attrs.Factory(list)
    pings: list[bytes] = attrs.Factory(list)
    """The payloads of the server's pings."""
    pongs: int = 0
    ended: bool = False


async def watch(
    ws: aiohttp.ClientWebSocketResponse, seconds: float, *, answer_pings: bool = True
) -> Seen:
    """Read for `seconds` on a connection opened with `autoping=False`, answering the
    server's pings (echoing their payload) unless told not to."""
    seen = Seen()
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            msg = await ws.receive(timeout=left)
        except TimeoutError:
            break
        if msg.type is aiohttp.WSMsgType.TEXT:
            seen.frames.append(msg.data)
        elif msg.type is aiohttp.WSMsgType.PING:
            seen.pings.append(msg.data)
            if answer_pings:
                await ws.pong(msg.data)
        elif msg.type is aiohttp.WSMsgType.PONG:
            seen.pongs += 1
        elif msg.type in ENDED:
            seen.ended = True
            break
    return seen


async def drain(ws: aiohttp.ClientWebSocketResponse, quiet: float = 0.03) -> int:
    """Discard what the client has buffered or is receiving, until `quiet` seconds pass
    with nothing; returns how many messages were dropped."""
    count = 0
    while True:
        try:
            msg = await ws.receive(timeout=quiet)
        except TimeoutError:
            return count
        count += 1
        if msg.type in ENDED:
            raise AssertionError(f"connection ended while draining: {msg}")


def stream_url(sim: Simulator, *names: str, combined: bool = True, query: str = "") -> str:
    if combined:
        url = f"{sim.ws_url}/stream?streams={'/'.join(names)}"
        return url + (f"&{query}" if query else "")
    return f"{sim.ws_url}/ws/{'/'.join(names)}" + (f"?{query}" if query else "")


async def reply(ws: aiohttp.ClientWebSocketResponse, within: float = 1.0) -> dict[str, Any]:
    """The next answer to a control message, whatever its id, skipping data frames."""
    deadline = time.monotonic() + within
    while True:
        frame = await read_json(ws, max(0.001, deadline - time.monotonic()))
        if isinstance(frame, dict) and "id" in frame and ("result" in frame or "error" in frame):
            return frame


async def ask(ws: aiohttp.ClientWebSocketResponse, body: Any) -> dict[str, Any]:
    """Send a control message (an object, or text as is) and return the next answer, without
    checking its id (for requests whose id is invalid or absent)."""
    await ws.send_str(body if isinstance(body, str) else json.dumps(body))
    return await reply(ws)


async def messages(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> list[aiohttp.WSMessage]:
    """Every message (of any type) received for `seconds`, or until the connection ends."""
    out: list[aiohttp.WSMessage] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            # not receive(timeout=…): with autoping, each ping it answers restarts that timeout
            async with asyncio.timeout(left):
                msg = await ws.receive()
        except TimeoutError:
            break
        out.append(msg)
        if msg.type in ENDED:
            break
    return out


def texts(received: list[aiohttp.WSMessage]) -> list[Any]:
    """The decoded text frames among `received`."""
    return [json.loads(m.data) for m in received if m.type is aiohttp.WSMsgType.TEXT]
