"""A vnpy/Foxtrot gateway backed by `StreamEngine`: market data only.

Add `FoxtrotStreamGateway` to a main engine like any gateway; `connect(setting)` loads
`vt_setting.json` and starts a `StreamEngine`, `subscribe(req)` streams a symbol, and every tick
is put on the main engine's `EventEngine` as `eTick.` and `eTick.<vt_symbol>` through
`on_tick`. Ticks are converted on the engine's consumer thread for this gateway (vnpy's
`EventEngine.put` is a thread-safe queue put), never on the network loop.

Facts of vnpy 4.5.0 this relies on: it has no `Exchange.BINANCE`, so an adapter's ticks carry
`Exchange.<ADAPTER NAME>` where vnpy has one and `Exchange.GLOBAL` otherwise (Binance:
`BTCUSDT.GLOBAL`). Tick times are timezone-aware, in UTC.

Needs the `vnpy` extra: ``pip install "foxtrot-stream[vnpy]"``. See docs/foxtrot-engine.md.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Any

try:
    from vnpy.event import EventEngine
    from vnpy.trader.constant import Exchange
    from vnpy.trader.gateway import BaseGateway
    from vnpy.trader.object import SubscribeRequest, TickData
except ImportError as exc:
    raise ImportError(
        "foxtrot_stream.integrations.vnpy needs vnpy, which is not installed: install the "
        'extra with `pip install "foxtrot-stream[vnpy]"` (or `uv add "foxtrot-stream[vnpy]"`)'
        f" ({exc})"
    ) from exc

from foxtrot_stream.engine import DEFAULT_MAXSIZE, POLICIES, StreamEngine
from foxtrot_stream.model import Tick

__all__ = ["FoxtrotStreamGateway", "exchange_for", "to_tick_data"]

log = logging.getLogger("foxtrot_stream.vnpy")

MARKET_DATA_ONLY = (
    "FoxtrotStreamGateway is market data only: it does not trade or query accounts; "
    "add a trading gateway for {what}"
)


def exchange_for(adapter: str) -> Any:
    """vnpy's `Exchange` member for an adapter: its own if vnpy has one, else GLOBAL."""
    return getattr(Exchange, adapter.upper(), Exchange.GLOBAL)


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)


def to_tick_data(
    tick: Tick, gateway_name: str, exchange: Any = None, symbol: str | None = None
) -> Any:
    """Our `Tick` as vnpy `TickData`: level-1 book, last price (0 when unknown, as in vnpy),
    `datetime` from the exchange's event time (else the local receive time), UTC-aware."""
    received = _utc(tick.received_ts / 1e9)
    when = _utc(tick.exchange_ts / 1000) if tick.exchange_ts is not None else received
    return TickData(
        gateway_name=gateway_name,
        symbol=symbol or tick.symbol,
        exchange=exchange_for(tick.adapter) if exchange is None else exchange,
        datetime=when,
        name=tick.symbol,
        last_price=tick.last if tick.last is not None else 0.0,
        bid_price_1=tick.bid,
        bid_volume_1=tick.bid_qty,
        ask_price_1=tick.ask,
        ask_volume_1=tick.ask_qty,
        localtime=received,
    )


class FoxtrotStreamGateway(BaseGateway):  # type: ignore[misc]  # vnpy has no type information
    """vnpy `BaseGateway` for market data from foxtrot-stream (one adapter per gateway)."""

    default_name = "FOXTROT_STREAM"
    default_setting: dict[str, str | int | float | bool] = {
        "settings_file": "",
        "adapter": "binance",
        "policy": "conflate",
        "maxsize": DEFAULT_MAXSIZE,
        "timeout": 30.0,
    }
    exchanges = [Exchange.GLOBAL]

    def __init__(self, event_engine: EventEngine, gateway_name: str = default_name) -> None:
        super().__init__(event_engine, gateway_name)
        self.engine: StreamEngine | None = None
        self.adapter = str(self.default_setting["adapter"])
        self.exchange: Any = exchange_for(self.adapter)
        self.timeout = 30.0
        self._spelling: dict[str, str] = {}
        """Upper-case symbol → the symbol as the host subscribed it (vt_symbols must match)."""
        self._lock = threading.Lock()

    # --- the gateway API ---------------------------------------------------------------------

    def connect(self, setting: dict[str, Any]) -> None:
        """Start streaming: keys as in `default_setting` (an empty `settings_file` means
        $FOXTROT_SETTINGS, else ./vt_setting.json). Bad settings raise `SettingsError`."""
        merged = {**self.default_setting, **setting}
        policy = str(merged["policy"])
        if policy not in POLICIES:
            raise ValueError(f"policy = {policy!r}: expected one of {', '.join(POLICIES)}")
        maxsize = int(_number(merged, "maxsize", int, 1, "an integer of at least 1"))
        timeout = _number(merged, "timeout", float, 0.0, "a number of seconds above 0")
        with self._lock:
            if self.engine is not None:
                self.write_log("already connected")
                return
            engine = StreamEngine.from_settings(str(merged["settings_file"]) or None)
            adapter = str(merged["adapter"])
            if adapter not in engine.host.adapters:
                raise LookupError(
                    f"adapter = {adapter!r}: not installed "
                    f"(installed: {', '.join(sorted(engine.host.adapters)) or 'none'})"
                )
            self.adapter, self.exchange = adapter, exchange_for(adapter)
            self.timeout = timeout
            engine.add_consumer(
                self._on_stream_tick,
                name=self.gateway_name,
                policy=policy,  # checked above (mypy narrows it to Policy)
                maxsize=maxsize,
            )
            engine.start()
            self.engine = engine
        self.write_log(f"connected: {adapter} market data through foxtrot-stream")

    def subscribe(self, req: SubscribeRequest) -> None:
        """Stream `req.symbol`. Blocks until the exchange has accepted or refused it (bounded
        by the `timeout` setting); a refusal or an error is written to the log, not raised,
        as vnpy gateways do."""
        engine = self.engine
        if engine is None:
            self.write_log(f"subscribe {req.vt_symbol}: not connected (call connect first)")
            return
        if req.exchange != self.exchange:
            self.write_log(
                f"subscribe {req.vt_symbol}: this gateway serves {self.adapter} symbols on "
                f"exchange {self.exchange.value}"
            )
            return
        with self._lock:
            self._spelling[req.symbol.upper()] = req.symbol
        try:
            refused = engine.subscribe(req.symbol, self.adapter, timeout=self.timeout)
        except (RuntimeError, LookupError, TimeoutError) as exc:
            self.write_log(f"subscribe {req.vt_symbol} failed: {exc}")
            return
        for symbol, why in refused.items():
            self.write_log(f"subscribe {symbol}.{self.exchange.value} refused: {why}")

    def unsubscribe(self, req: SubscribeRequest) -> None:
        """Not in vnpy's `BaseGateway`; offered for hosts that add symbols and remove them."""
        engine = self.engine
        if engine is None:
            return
        try:
            engine.unsubscribe(req.symbol, self.adapter, timeout=self.timeout)
        except (RuntimeError, TimeoutError) as exc:
            self.write_log(f"unsubscribe {req.vt_symbol} failed: {exc}")

    def close(self, timeout: float = 10.0) -> None:
        """Stop the stream engine: queued ticks reach the event engine, every thread ends."""
        with self._lock:
            engine, self.engine = self.engine, None
        if engine is not None and not engine.stop(timeout):
            self.write_log(f"foxtrot-stream did not stop within {timeout}s")

    def status(self) -> dict[str, Any]:
        """The stream engine's status (see `StreamEngine.status`); {} when not connected."""
        engine = self.engine
        return engine.status(timeout=self.timeout) if engine is not None else {}

    # --- market data only ----------------------------------------------------------------------

    def send_order(self, req: Any) -> str:
        raise NotImplementedError(MARKET_DATA_ONLY.format(what="orders"))

    def cancel_order(self, req: Any) -> None:
        raise NotImplementedError(MARKET_DATA_ONLY.format(what="orders"))

    def send_quote(self, req: Any) -> str:
        raise NotImplementedError(MARKET_DATA_ONLY.format(what="quotes"))

    def cancel_quote(self, req: Any) -> None:
        raise NotImplementedError(MARKET_DATA_ONLY.format(what="quotes"))

    def query_account(self) -> None:
        raise NotImplementedError(MARKET_DATA_ONLY.format(what="accounts"))

    def query_position(self) -> None:
        raise NotImplementedError(MARKET_DATA_ONLY.format(what="positions"))

    # --- on the consumer thread ----------------------------------------------------------------

    def _on_stream_tick(self, tick: Tick) -> None:
        symbol = self._spelling.get(tick.symbol, tick.symbol)
        self.on_tick(to_tick_data(tick, self.gateway_name, self.exchange, symbol))


def _number(
    setting: dict[str, Any], key: str, kind: type[float], floor: float, expected: str
) -> float:
    """`setting[key]` as `kind` (numeric strings too: vnpy's connect dialog sends text), or a
    ValueError naming the key, the value and what was expected. `kind` is int or float; an
    int must be at least `floor`, a float above it."""
    value = setting[key]
    try:
        if isinstance(value, bool):
            raise ValueError
        number = kind(value)
        exact = float(value) == number  # an int setting must not be silently truncated
    except (TypeError, ValueError):
        raise ValueError(f"{key} = {value!r}: expected {expected}") from None
    too_small = number <= floor if kind is float else number < floor
    if not exact or too_small:  # (NaN compares unequal: not exact)
        raise ValueError(f"{key} = {value!r}: expected {expected}")
    return number
