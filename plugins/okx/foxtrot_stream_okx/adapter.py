"""The OKX Spot adapter; the protocol facts it relies on are in plugins/okx/README.md.

Channel `bbo-tbt`, not `tickers`: both carry the best bid/offer with sizes, but `tickers` pushes
at most every 100 ms without a sequence number; `bbo-tbt` pushes each change of the top of the
book with a per-instrument `seqId`, so duplicates (reconnects, rotation overlaps) are dropped by
id, not guessed from millisecond times. It has no last trade price: streamed ticks have `last`
None, polled ones carry OKX's. A symbol is OKX's instId (`BTC-USDT`, see the README).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Annotated, Any

import aiohttp
import msgspec
import orjson

import foxtrot_stream as fx
from foxtrot_stream import Tick, TransportKind
from foxtrot_stream_okx.settings import OkxSettings

NAME = "okx"
CHANNEL = "bbo-tbt"
LIMITS = fx.ConnectionLimits(
    max_streams=300,
    max_control_messages_per_second=3.0,
    max_lifetime=24 * 3600.0,
    max_streams_per_message=100,
    max_connects=3,
    connect_window=1.0,
    max_idle=30.0,
)
RATE_LIMIT_CODES = frozenset({"50011", "50061"})  # OKX's REST codes for a rate limit
RATE_LIMIT_WAIT = 2.0  # seconds to hold REST after one, unless a Retry-After says otherwise
INSTRUMENTS_TTL = 3600.0
_NAMED = re.compile(r"channel:([\w-]+),\s*instId:([A-Za-z0-9-]+)")

Id = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]


class _Arg(msgspec.Struct, gc=False):
    channel: str = ""
    instId: str | None = None


class _Bbo(msgspec.Struct, gc=False):  # levels: [px, sz, "0", orders], strings (strict=False)
    asks: list[list[float]]
    bids: list[list[float]]
    ts: Id
    seqId: Id


class _Frame(msgspec.Struct, gc=False):
    arg: _Arg | None = None
    data: list[_Bbo] | None = None
    event: str | None = None
    code: str | None = None
    msg: str = ""


_decode = msgspec.json.Decoder(_Frame, strict=False).decode


class OkxAdapter:
    name = NAME
    display_name = "OkxAdapter"
    limits = LIMITS
    app_heartbeat = fx.AppHeartbeat(message="ping", answer="pong")

    def __init__(self, settings: OkxSettings | None = None) -> None:
        self.settings = settings or OkxSettings()
        self._listed: fx.Listing[dict[str, fx.Instrument]] = fx.Listing(INSTRUMENTS_TTL)

    def streams_for(self, symbol: str) -> tuple[str, ...]:
        return (f"{CHANNEL}:{symbol}",)

    def open_url(self, streams: Sequence[str]) -> tuple[str, tuple[str, ...]]:
        return self.settings.ws_url, tuple(streams)  # OKX subscribes by message only

    def control_message(self, method: str, streams: Sequence[str], request_id: int) -> str:
        args = [dict(zip(("channel", "instId"), s.split(":", 1), strict=True)) for s in streams]
        op = "subscribe" if method == "SUBSCRIBE" else "unsubscribe"
        return orjson.dumps({"op": op, "args": args}).decode()

    def make_handler(self, sink: fx.TickSink, events: fx.ConnectionEvents) -> fx.FrameHandler:
        ws = TransportKind.WEBSOCKET

        def handler(frame: str | bytes, received_ns: int) -> None:
            try:
                msg = _decode(frame)
                data, arg = msg.data, msg.arg
                if data is not None and arg is not None and arg.instId is not None:
                    symbol = arg.instId
                    for d in data:
                        bid, ask = d.bids[0], d.asks[0]
                        sink(Tick(NAME, symbol, bid[0], bid[1], ask[0], ask[1], None, d.seqId,
                                  None, d.ts, received_ns, ws))  # fmt: skip
                elif msg.event is not None:
                    answer(msg, frame)
                else:
                    events.malformed("unexpected message", frame)
            except (ValueError, TypeError, IndexError, RecursionError) as exc:
                events.malformed(f"{type(exc).__name__}: {exc}", frame)

        def answer(msg: _Frame, frame: str | bytes) -> None:
            if msg.event == "subscribe" and msg.arg is not None and msg.arg.instId is not None:
                events.subscription_result(f"{msg.arg.channel}:{msg.arg.instId}", None)
            elif msg.event == "error":
                named = _NAMED.search(msg.msg)
                if named is None:
                    events.malformed(f"error {msg.code}: {msg.msg}", frame)
                else:
                    events.subscription_result(f"{named[1]}:{named[2]}", f"{msg.code}: {msg.msg}")
            elif msg.event == "notice" and msg.code == "64008":
                events.server_shutdown()

        return handler

    async def _get(self, session: aiohttp.ClientSession, path: str) -> list[Any]:
        """An answer's `data`; `fx.RateLimited`, or `fx.PollError` unless HTTP 200 with code "0"."""
        timeout = aiohttp.ClientTimeout(total=self.settings.request_timeout)
        try:
            async with session.get(f"{self.settings.rest_url}{path}", timeout=timeout) as resp:
                status, payload = resp.status, await resp.read()
                retry_after = resp.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise fx.PollError(f"{path} failed: {type(exc).__name__}: {exc}") from exc
        try:
            body = orjson.loads(payload)
            code, data, said = str(body.get("code")), body.get("data"), body.get("msg")
        except (ValueError, AttributeError):
            code, data, said = None, None, payload[:100].decode(errors="replace")
        said = f"HTTP {status}, code {code}: {said}"
        if status == 429 or code in RATE_LIMIT_CODES:
            wait = retry_after if retry_after and retry_after.isdigit() else RATE_LIMIT_WAIT
            raise fx.RateLimited(f"{path}: rate limit ({said})", float(wait))
        if status != 200 or code != "0" or not isinstance(data, list):
            raise fx.PollError(f"{path} answered {said}")
        return data

    async def server_time(self, session: aiohttp.ClientSession) -> int:
        """`GET /api/v5/public/time`: OKX's clock in ms."""
        data = await self._get(session, "/api/v5/public/time")
        try:
            return int(data[0]["ts"])
        except (IndexError, KeyError, TypeError, ValueError) as exc:
            raise fx.PollError(f"/api/v5/public/time answered no time: {data!r}") from exc

    async def _instruments(self, session: aiohttp.ClientSession) -> dict[str, fx.Instrument]:
        """instId → instrument (state `live`: TRADING), kept an hour, one request at a time."""

        async def fetch() -> dict[str, fx.Instrument]:
            rows = await self._get(session, "/api/v5/public/instruments?instType=SPOT")
            return {i.symbol: i for i in map(_instrument, rows)}

        return await self._listed.get(fetch)

    async def instruments(self, session: aiohttp.ClientSession) -> tuple[fx.Instrument, ...]:
        return tuple((await self._instruments(session)).values())

    async def trading_symbols(self, session: aiohttp.ClientSession) -> tuple[str, ...]:
        return tuple(sorted(s for s, i in (await self._instruments(session)).items() if i.trading))

    async def validate_symbols(
        self, session: aiohttp.ClientSession, symbols: Sequence[str]
    ) -> fx.SymbolCheck:
        listed = await self._instruments(session)
        invalid = {
            s: f"{s} is not trading on OKX (state {listed[s].status})"
            if s in listed
            else f"{s} is not an OKX SPOT instrument (OKX writes them BTC-USDT)"
            for s in symbols
            if s not in listed or not listed[s].trading
        }
        return fx.SymbolCheck(tuple(s for s in symbols if s not in invalid), invalid)

    async def poll(self, session: aiohttp.ClientSession, symbols: Sequence[str]) -> fx.PollResult:
        """One request whatever the symbols: every SPOT ticker, the wanted ones kept."""
        if not symbols:
            return fx.PollResult(())
        requested_ns = time.time_ns()
        try:
            rows = await self._get(session, "/api/v5/market/tickers?instType=SPOT")
        except fx.RateLimited as exc:
            return fx.PollResult((), retry_after=exc.retry_after, requested_ns=requested_ns)
        wanted, received_ns, ticks = set(symbols), time.time_ns(), []
        for r in rows:
            if isinstance(r, dict) and r.get("instId") in wanted:
                try:
                    ticks.append(Tick(NAME, r["instId"], float(r["bidPx"]), float(r["bidSz"]),
                                      float(r["askPx"]), float(r["askSz"]),
                                      float(r["last"]) if r.get("last") else None, None, None,
                                      None, received_ns, TransportKind.HTTP))  # fmt: skip
                except (KeyError, TypeError, ValueError):
                    continue  # no book (empty strings): nothing to report for it this time
        return fx.PollResult(tuple(ticks), requested_ns=requested_ns)


def _num(value: Any) -> float:
    try:
        return float(value or 0.0)
    except (TypeError, ValueError):
        return 0.0


def _instrument(r: Any) -> fx.Instrument:
    r = r if isinstance(r, dict) else {}
    state = str(r.get("state"))
    tick, least, lot = (_num(r.get(field)) for field in ("tickSz", "minSz", "lotSz"))
    return fx.Instrument(
        str(r.get("instId")), "TRADING" if state == "live" else state, tick, least, lot
    )
