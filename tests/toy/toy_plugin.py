"""An exchange plugin written as a third party would: it imports only `foxtrot_stream`'s public
API. Its exchange has no update ids, an application heartbeat and per-item subscription
answers (see `toy_exchange`)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import aiohttp
import attrs

from foxtrot_stream import (
    AdapterSpec,
    AppHeartbeat,
    ConnectionEvents,
    ConnectionLimits,
    FrameHandler,
    HttpUrl,
    PollError,
    PollResult,
    SymbolCheck,
    Tick,
    TickSink,
    TransportKind,
    WebSocketUrl,
    hookimpl,
)

NAME = "toy"


@attrs.frozen
class ToySettings:
    ws_url: WebSocketUrl = attrs.field(
        default=WebSocketUrl("ws://127.0.0.1:1/ws"), metadata={"doc": "Toy stream endpoint."}
    )
    rest_url: HttpUrl = attrs.field(
        default=HttpUrl("http://127.0.0.1:1"), metadata={"doc": "Toy REST endpoint."}
    )


class ToyAdapter:
    name = NAME
    display_name = "ToyAdapter"
    app_heartbeat = AppHeartbeat(message="ping", answer="pong")

    def __init__(self, settings: ToySettings | None, idle: float = 1.0) -> None:
        self.settings = settings or ToySettings()
        self.limits = ConnectionLimits(
            max_streams=100, max_control_messages_per_second=10.0, max_lifetime=1e9, max_idle=idle
        )

    def streams_for(self, symbol: str) -> tuple[str, ...]:
        return (symbol,)

    def open_url(self, streams: Sequence[str]) -> tuple[str, tuple[str, ...]]:
        return self.settings.ws_url, tuple(streams)  # everything by control message

    def control_message(self, method: str, streams: Sequence[str], request_id: int) -> str:
        op = "subscribe" if method == "SUBSCRIBE" else "unsubscribe"
        return json.dumps({"op": op, "args": list(streams), "id": request_id})

    def make_handler(self, sink: TickSink, events: ConnectionEvents) -> FrameHandler:
        def handler(frame: str | bytes, received_ns: int) -> None:
            try:
                msg = json.loads(frame)
                data = msg.get("data")
                if data is None:
                    event = msg.get("event")
                    if event == "subscribe":
                        events.subscription_result(msg["arg"], None)
                    elif event == "error":
                        events.subscription_result(msg["arg"], msg.get("msg", "refused"))
                    return
                tick = Tick(NAME, msg["arg"], float(data["bid"]), 1.0, float(data["ask"]), 1.0,
                            None, None, None, int(data["ts"]), received_ns,
                            TransportKind.WEBSOCKET)  # fmt: skip
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                events.malformed(f"{type(exc).__name__}: {exc}", frame)
                return
            sink(tick)

        return handler

    async def validate_symbols(
        self, session: aiohttp.ClientSession, symbols: Sequence[str]
    ) -> SymbolCheck:
        async with session.get(f"{self.settings.rest_url}/instruments") as resp:
            listed = {row["symbol"] for row in await resp.json()}
        return SymbolCheck(
            tuple(s for s in symbols if s in listed),
            {s: f"{s} is not listed" for s in symbols if s not in listed},
        )

    async def poll(self, session: aiohttp.ClientSession, symbols: Sequence[str]) -> PollResult:
        requested_ns = time.time_ns()
        try:
            async with session.get(f"{self.settings.rest_url}/tickers") as resp:
                rows = await resp.json()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise PollError(str(exc)) from exc
        wanted = set(symbols)
        now = time.time_ns()
        ticks = tuple(
            Tick(
                NAME,
                r["symbol"],
                float(r["bid"]),
                1.0,
                float(r["ask"]),
                1.0,
                None,
                None,
                None,
                None,
                now,
                TransportKind.HTTP,
            )
            for r in rows
            if r["symbol"] in wanted
        )
        return PollResult(ticks, requested_ns=requested_ns)


class ToyPlugin:
    """Registered like any plugin; `heartbeat=False` leaves the application heartbeat out (to
    show what happens without it)."""

    def __init__(self, *, heartbeat: bool = True, idle: float = 1.0) -> None:
        self.heartbeat = heartbeat
        self.idle = idle

    def _make(self, settings: Any) -> ToyAdapter:
        adapter = ToyAdapter(settings, self.idle)
        if not self.heartbeat:
            adapter.app_heartbeat = None  # type: ignore[assignment]
        return adapter

    @hookimpl
    def register_adapters(self) -> list[AdapterSpec]:
        return [AdapterSpec(NAME, "ToyAdapter", ToySettings, self._make, "a test exchange")]
