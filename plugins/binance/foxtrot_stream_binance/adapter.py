"""The Binance Spot adapter: stream names, control messages, frame decoding, REST polling.

Quotes come from `<symbol>@bookTicker` (real time, carries the book update id `u` but no
event time) and last price/trade time from `<symbol>@trade` (real time, carries `E`/`T`).
`@trade` is preferred to `@aggTrade` because it is equally real-time and its ids are the
exchange's trade ids; `@ticker` would add `E` but only once per second.

Both streams update one merged quote per symbol, kept by the adapter (not per connection) so
that the overlap of a rotation, where two connections deliver the same frames, is harmless:
the merged state only moves forward, and the feed's sequencer drops what is not newer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Annotated, Any

import aiohttp
import attrs
import msgspec
import orjson
from msgspec.structs import replace

from foxtrot_stream.contract.listing import Listing
from foxtrot_stream.contract.model import Tick, TransportKind
from foxtrot_stream.contract.records import (
    ConnectionEvents,
    ConnectionLimits,
    FrameHandler,
    Instrument,
    PollError,
    PollResult,
    SymbolCheck,
    TickSink,
)
from foxtrot_stream.runtime.sequencer import ResetWatch
from foxtrot_stream_binance.settings import BinanceSettings

NAME = "binance"
DISPLAY = "BinanceAdapter"
LIMITS = ConnectionLimits(
    max_streams=1024,
    max_control_messages_per_second=5.0,
    max_lifetime=24 * 3600.0,
    max_streams_per_message=200,
)
#: Streams put in a combined-stream URL; the rest are subscribed by message (keeps URLs short).
URL_STREAMS = 100
#: How long an `exchangeInfo` answer is trusted before it is fetched again.
EXCHANGE_INFO_TTL = 3600.0
#: Polling more symbols than this asks for every book ticker (weight 4, as for 21 or more
#: named symbols) rather than naming them all in the URL.
ALL_BOOK_TICKERS_ABOVE = 100

log = logging.getLogger(DISPLAY)
error_log = logging.getLogger(f"{DISPLAY}Error")


Id = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
"""Ids and times are non-negative and fit a signed 64-bit integer (Binance documents them as
longs); anything else is a malformed frame, not a number that breaks a consumer later."""


class _Event(msgspec.Struct, gc=False):
    """The fields read from either stream's event (`@bookTicker`: u s b B a A; `@trade`:
    e E s t p), decoded and type-checked by msgspec in one pass. Binance sends prices and
    quantities as strings: `strict=False` parses those to float (a string that is not a
    number fails the frame); other fields are ignored without being built."""

    s: str | None = None
    u: Id | None = None
    b: float | None = None
    B: float | None = None
    a: float | None = None
    A: float | None = None
    e: str | None = None
    E: Id | None = None
    t: Id | None = None
    p: float | None = None


class _Combined(msgspec.Struct, gc=False):
    """A combined stream's frame, `{"stream": ..., "data": event}`; anything else (a control
    response, a raw stream's event) has no `data`."""

    data: _Event | None = None


_decode_combined = msgspec.json.Decoder(_Combined, strict=False).decode
_decode_event = msgspec.json.Decoder(_Event, strict=False).decode


class BinanceAdapter:
    name = NAME
    display_name = DISPLAY

    def __init__(self, settings: BinanceSettings | None = None) -> None:
        self.settings = settings or BinanceSettings()
        self.limits = attrs.evolve(LIMITS, max_lifetime=self.settings.connection_lifetime)
        self._books: dict[str, Tick] = {}
        """symbol → the last tick emitted: the merged bookTicker + trade state, which only
        moves forward. Ticks are immutable, so a new one is the new state (no copy)."""
        self._book_resets: dict[str, ResetWatch] = {}
        self._trade_resets: dict[str, ResetWatch] = {}
        """Watches for an exchange-side restart of a symbol's book and trade ids."""
        self._early: dict[str, tuple[float, int]] = {}
        """symbol → (price, id) of the newest trade seen before the symbol's first book."""
        self._listing: Listing[dict[str, str]] = Listing(EXCHANGE_INFO_TTL)  # symbol → status
        self._instruments: tuple[Instrument, ...] = ()
        self.weight_limit: int | None = None
        """REQUEST_WEIGHT per minute, read from exchangeInfo's rateLimits (not hard-coded)."""

    # --- streams and control messages ------------------------------------------------------

    def streams_for(self, symbol: str) -> tuple[str, ...]:
        s = symbol.lower()
        return (f"{s}@bookTicker", f"{s}@trade")

    def open_url(self, streams: Sequence[str]) -> tuple[str, tuple[str, ...]]:
        head, rest = streams[:URL_STREAMS], tuple(streams[URL_STREAMS:])
        if not head:
            return f"{self.settings.ws_url}/stream", rest
        return f"{self.settings.ws_url}/stream?streams={'/'.join(head)}", rest

    def control_message(self, method: str, streams: Sequence[str], request_id: int) -> str:
        return orjson.dumps({"method": method, "params": list(streams), "id": request_id}).decode()

    # --- decoding ----------------------------------------------------------------------------

    def make_handler(self, sink: TickSink, events: ConnectionEvents) -> FrameHandler:
        books, early = self._books, self._early
        book_resets, trade_resets = self._book_resets, self._trade_resets
        decode = _decode_combined
        ws = TransportKind.WEBSOCKET

        def handler(frame: str | bytes, received_ns: int) -> None:
            # Both streams are inlined, no call but the sink's: they are all of the traffic.
            # msgspec checks the JSON and every field's type while decoding; a field that is
            # missing shows as None here. See benchmarks/README.md for what each step costs.
            try:
                ev = decode(frame).data
                if ev is None:  # a control response, or a raw /ws/ stream's event
                    ev = other(frame)
                    if ev is None:
                        return
                symbol = ev.s
                u = ev.u
                if u is not None:
                    bid, bid_qty, ask, ask_qty = ev.b, ev.B, ev.a, ev.A
                    if (
                        symbol is None
                        or bid is None
                        or bid_qty is None
                        or ask is None
                        or ask_qty is None
                    ):
                        raise TypeError("a bookTicker needs s, b, B, a and A")
                    prev = books.get(symbol)
                    if prev is None:  # the first book: with the newest trade seen before it
                        last, trade_id = early.pop(symbol, (None, None))
                    elif u > prev.seq:  # type: ignore[operator]  # a book tick has a seq
                        last, trade_id = prev.last, prev.trade_id
                    elif restarted(book_resets, symbol, prev.seq, u, received_ns):
                        last, trade_id = prev.last, None  # the exchange restarted its ids
                    else:  # a book we have seen (another connection's copy): the merged state
                        # stays; the tick goes on so that the sequencer counts the duplicate
                        sink(replace(prev, exchange_ts=None, received_ts=received_ns))
                        return
                    tick = books[symbol] = Tick(
                        NAME, symbol, bid, bid_qty, ask, ask_qty, last, u, trade_id, None,
                        received_ns, ws,
                    )  # fmt: skip
                    sink(tick)
                elif ev.e == "trade":
                    t, price, event_ts = ev.t, ev.p, ev.E
                    if symbol is None or t is None or price is None or event_ts is None:
                        raise TypeError("a trade needs s, t, p and E")
                    prev = books.get(symbol)
                    if prev is None:  # no tick until the book is known: a tick has bid and ask
                        seen = early.get(symbol)
                        if seen is None or t > seen[1]:
                            early[symbol] = (price, t)
                        return
                    trade_id = prev.trade_id
                    if (
                        trade_id is None
                        or t > trade_id
                        or restarted(trade_resets, symbol, trade_id, t, received_ns)
                    ):
                        tick = books[symbol] = Tick(
                            NAME, symbol, prev.bid, prev.bid_qty, prev.ask, prev.ask_qty, price,
                            prev.seq, t, event_ts, received_ns, ws,
                        )  # fmt: skip
                    else:  # an older trade, or a copy: the state stays; the sequencer drops it
                        tick = replace(prev, exchange_ts=event_ts, received_ts=received_ns)
                    sink(tick)
                elif ev.e == "serverShutdown":
                    events.server_shutdown()
                else:
                    events.malformed("unexpected message", frame)
            except (ValueError, TypeError, RecursionError) as exc:
                # msgspec's errors are ValueErrors; RecursionError: a frame nested too deeply
                if not shutdown_notice(frame):
                    events.malformed(f"{type(exc).__name__}: {exc}", frame)

        def restarted(
            watches: dict[str, ResetWatch], symbol: str, accepted: Any, new: int, now: int
        ) -> bool:
            """An id below the merged state's (only here, off the hot path): a copy from
            another connection, or the exchange restarted its ids (see `ResetWatch`)."""
            watch = watches.get(symbol)
            if watch is None:
                watch = watches[symbol] = ResetWatch()
            return new != accepted and watch.older(accepted, (new, 0), now)

        def shutdown_notice(frame: str | bytes) -> bool:
            """A `serverShutdown` event whose other fields failed the typed decode (it only
            needs `e`): still a shutdown notice. Only on the error path, so it costs nothing."""
            try:
                msg = orjson.loads(frame)
            except (ValueError, RecursionError):
                return False
            data = msg.get("data", msg) if type(msg) is dict else None
            if type(data) is dict and data.get("e") == "serverShutdown":
                events.server_shutdown()
                return True
            return False

        def other(frame: str | bytes) -> _Event | None:
            """A frame without `data`: a control response (handled here, None), or a raw
            stream's event (returned, for the handler to go on with)."""
            msg = orjson.loads(frame)
            if type(msg) is not dict:
                events.malformed("payload is not an object", frame)
            elif "id" in msg and ("result" in msg or "error" in msg or "code" in msg):
                events.control_response(msg["id"], _control_error(msg))
            else:
                return _decode_event(frame)
            return None

        return handler

    # --- REST --------------------------------------------------------------------------------

    def _rest(self, path: str) -> str:
        return f"{self.settings.rest_url}{path}"

    def _timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=self.settings.request_timeout)

    async def server_time(self, session: aiohttp.ClientSession) -> int:
        """`GET /api/v3/time` (weight 1): the exchange's clock, for latency offset correction."""
        try:
            async with session.get(self._rest("/api/v3/time"), timeout=self._timeout()) as resp:
                if resp.status != 200:
                    raise PollError(f"time answered HTTP {resp.status}")
                body = orjson.loads(await resp.read())
            return int(body["serverTime"])
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as exc:
            raise PollError(f"time failed: {type(exc).__name__}: {exc}") from exc

    async def listed(
        self, session: aiohttp.ClientSession, *, refresh: bool = False
    ) -> dict[str, str]:
        """symbol → status from `exchangeInfo`, cached for an hour; callers that miss the cache
        while a request is on its way share it (`Listing`): exchangeInfo weighs 20."""
        return await self._listing.get(lambda: self._fetch_listed(session), refresh=refresh)

    async def _fetch_listed(self, session: aiohttp.ClientSession) -> dict[str, str]:
        try:
            async with session.get(
                self._rest("/api/v3/exchangeInfo"), timeout=self._timeout()
            ) as resp:
                if resp.status != 200:
                    raise PollError(f"exchangeInfo answered HTTP {resp.status}")
                body = orjson.loads(await resp.read())
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise PollError(f"exchangeInfo failed: {type(exc).__name__}: {exc}") from exc
        symbols = body.get("symbols", [])
        listed = {s["symbol"]: s.get("status", "TRADING") for s in symbols}
        self._instruments = tuple(_instrument(s) for s in symbols)
        for limit in body.get("rateLimits", []):
            if limit.get("rateLimitType") == "REQUEST_WEIGHT" and limit.get("interval") == "MINUTE":
                self.weight_limit = int(limit["limit"]) // max(1, int(limit.get("intervalNum", 1)))
        return listed

    async def instruments(self, session: aiohttp.ClientSession) -> tuple[Instrument, ...]:
        """Every symbol of `exchangeInfo` with its PRICE_FILTER tick and LOT_SIZE limits."""
        await self.listed(session)
        return self._instruments

    async def trading_symbols(self, session: aiohttp.ClientSession) -> tuple[str, ...]:
        listed = await self.listed(session)
        return tuple(sorted(s for s, status in listed.items() if status == "TRADING"))

    async def validate_symbols(
        self, session: aiohttp.ClientSession, symbols: Sequence[str]
    ) -> SymbolCheck:
        listed = await self.listed(session)
        valid: list[str] = []
        invalid: dict[str, str] = {}
        for s in symbols:
            status = listed.get(s)
            if status is None:
                invalid[s] = f"{s} is not listed on Binance (exchangeInfo)"
            elif status != "TRADING":
                invalid[s] = f"{s} is not trading on Binance (status {status})"
            else:
                valid.append(s)
        return SymbolCheck(tuple(valid), invalid)

    async def poll(self, session: aiohttp.ClientSession, symbols: Sequence[str]) -> PollResult:
        if not symbols:
            return PollResult(())
        requested_ns = time.time_ns()
        result = await self._book_tickers(session, symbols, requested_ns)
        if result.invalid and not result.ticks:
            # One bad symbol fails the whole batch (-1121): find which, then poll the rest.
            invalid = await self._find_invalid(session, symbols)
            good = [s for s in symbols if s not in invalid]
            result = await self._book_tickers(session, good, requested_ns) if good else result
            result = attrs.evolve(result, invalid={**invalid, **result.invalid})
        return result

    async def _book_tickers(
        self, session: aiohttp.ClientSession, symbols: Sequence[str], requested_ns: int
    ) -> PollResult:
        wanted: set[str] | None = None
        params: dict[str, str] = {}
        if len(symbols) == 1:
            params = {"symbol": symbols[0]}
        elif len(symbols) <= ALL_BOOK_TICKERS_ABOVE:
            params = {"symbols": orjson.dumps(list(symbols)).decode()}
        else:  # every symbol in one answer: the same weight, and no URL kilobytes long
            wanted = set(symbols)
        try:
            async with session.get(
                self._rest("/api/v3/ticker/bookTicker"), params=params, timeout=self._timeout()
            ) as resp:
                weight = _used_weight(resp.headers)
                payload = await resp.read()
                status = resp.status
                retry_after = _retry_after(resp.headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise PollError(f"bookTicker request failed: {type(exc).__name__}: {exc}") from exc
        if status in (429, 418):
            return PollResult(
                (),
                retry_after=retry_after or 60.0,
                banned=status == 418,
                used_weight=weight,
                requested_ns=requested_ns,
            )
        if status >= 500 or status == 403:
            raise PollError(f"bookTicker answered HTTP {status}")
        try:
            body = orjson.loads(payload)
        except ValueError as exc:
            raise PollError(f"bookTicker answered malformed JSON: {exc}") from exc
        if status != 200:
            code = body.get("code") if isinstance(body, dict) else None
            msg = body.get("msg") if isinstance(body, dict) else str(body)
            if code == -1121:
                invalid = {s: f"Binance refused {s}: {msg}" for s in symbols}
                return PollResult(
                    (), invalid=invalid, used_weight=weight, requested_ns=requested_ns
                )
            raise PollError(f"bookTicker answered HTTP {status}: {code} {msg}")
        received_ns = time.time_ns()
        rows = body if isinstance(body, list) else [body]
        ticks = []
        for row in rows:
            if wanted is not None and isinstance(row, dict) and row.get("symbol") not in wanted:
                continue
            try:
                ticks.append(
                    Tick(
                        NAME,
                        row["symbol"],
                        float(row["bidPrice"]),
                        float(row["bidQty"]),
                        float(row["askPrice"]),
                        float(row["askQty"]),
                        None,
                        None,
                        None,
                        None,
                        received_ns,
                        TransportKind.HTTP,
                    )
                )
            except (KeyError, TypeError, ValueError) as exc:
                error_log.warning("malformed bookTicker row %r: %s", row, exc)
        return PollResult(
            tuple(ticks),
            used_weight=weight,
            weight_limit=self.weight_limit,
            requested_ns=requested_ns,
        )

    async def _find_invalid(
        self, session: aiohttp.ClientSession, symbols: Sequence[str]
    ) -> dict[str, str]:
        try:
            listed = await self.listed(session, refresh=True)
        except PollError:
            listed = {}
        invalid = {
            s: f"{s} is not listed on Binance (exchangeInfo)" for s in symbols if s not in listed
        }
        if invalid or not listed:
            return invalid
        for s in symbols:  # exchangeInfo knows them all, yet the batch failed: ask one by one
            single = await self._book_tickers(session, [s], time.time_ns())
            invalid.update(single.invalid)
        return invalid


def _control_error(msg: dict[str, Any]) -> str | None:
    """The error of a control response in either form Binance uses, None on success."""
    err = msg.get("error")
    if isinstance(err, dict):
        return f"code {err.get('code')}: {err.get('msg')}"
    if err is not None:
        return str(err)
    if "code" in msg:  # the flat form of the documentation
        return f"code {msg.get('code')}: {msg.get('msg')}"
    return None


def _used_weight(headers: Any) -> int | None:
    value = headers.get("X-MBX-USED-WEIGHT-1M") or headers.get("x-mbx-used-weight-1m")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _instrument(info: dict[str, Any]) -> Instrument:
    """An `exchangeInfo` symbol as an `Instrument` (0 where a filter or a number is missing)."""
    filters = {f.get("filterType"): f for f in info.get("filters", ()) if isinstance(f, dict)}

    def number(kind: str, field: str) -> float:
        try:
            return float(filters.get(kind, {}).get(field, 0.0))
        except (TypeError, ValueError):
            return 0.0

    return Instrument(
        symbol=str(info["symbol"]),
        status=str(info.get("status", "TRADING")),
        price_tick=number("PRICE_FILTER", "tickSize"),
        min_qty=number("LOT_SIZE", "minQty"),
        lot_size=number("LOT_SIZE", "stepSize"),
    )
