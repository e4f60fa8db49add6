"""A vnpy gateway backed by `StreamEngine`: market data only.

Add `FoxtrotStreamGateway` to vnpy's `MainEngine` like any gateway. `connect(setting)` reads
vnpy's own `SETTINGS` (loaded from vt_setting.json in its trader folder), merged with an
optional `settings_file` (relative to that folder) and the connect dialog's values, and
starts a `StreamEngine`; contracts (`ContractData`) follow as soon as the exchange lists them;
`subscribe(req)` streams a symbol, and every tick is put on the main engine's `EventEngine` as
`eTick.` and `eTick.<vt_symbol>` through `on_tick`. Ticks are converted on the engine's
consumer thread for this gateway (vnpy's `EventEngine.put` is a thread-safe queue put), never
on the network loop. Our log lines (connections, failovers, breaker changes, warnings) become
`LogData` on `eLog` while connected.

Facts of vnpy 4.5.0 this relies on: it has no `Exchange.BINANCE`, so an adapter's ticks carry
the exchange its plugin declares for vnpy (`AdapterSpec.host_exchanges["vnpy"]`; Binance spot:
`Exchange.GLOBAL`, so `BTCUSDT.GLOBAL`), else `Exchange.<ADAPTER NAME>` where vnpy has one,
else `Exchange.GLOBAL`. Tick times are timezone-aware, in UTC.

Needs the `vnpy` extra: ``pip install "foxtrot-stream[vnpy]"``. See docs/foxtrot-engine.md.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from pathlib import Path
from typing import Any

try:
    from vnpy.event import EventEngine
    from vnpy.trader.constant import Exchange, Product
    from vnpy.trader.gateway import BaseGateway
    from vnpy.trader.object import ContractData, LogData, SubscribeRequest, TickData
except ImportError as exc:
    raise ImportError(
        "foxtrot_stream.integrations.vnpy needs vnpy, which is not installed: install the "
        'extra with `pip install "foxtrot-stream[vnpy]"` (or `uv add "foxtrot-stream[vnpy]"`)'
        f" ({exc})"
    ) from exc

from foxtrot_stream.config.settings import SettingsError
from foxtrot_stream.contract.model import Tick
from foxtrot_stream.contract.plugins import PluginHost
from foxtrot_stream.contract.records import AdapterSpec, Instrument
from foxtrot_stream.integrations._host import (
    HostLog,
    check_dialog,
    engine_for_host,
    fetch_instruments,
    loaded_host_settings,
    logger_names,
    settings_problems,
    transport_notice,
)
from foxtrot_stream.integrations.engine import DEFAULT_MAXSIZE, StreamEngine

__all__ = ["FoxtrotStreamGateway", "exchange_for", "to_tick_data"]

log = logging.getLogger("foxtrot_stream.vnpy")

HOST = "vnpy"

MARKET_DATA_ONLY = (
    "FoxtrotStreamGateway is market data only: it does not trade or query accounts; "
    "add a trading gateway for {what}"
)


def exchange_for(adapter: str, spec: AdapterSpec | None = None) -> Any:
    """vnpy's `Exchange` member for an adapter: the one its plugin declares for vnpy (if vnpy
    has it), else vnpy's member of the adapter's name if it has one, else GLOBAL."""
    named = spec.host_exchanges.get(HOST, "") if spec is not None else ""
    declared = getattr(Exchange, named, None)
    if declared is not None:
        return declared
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
        self._log = HostLog(self._post_log)

    # --- the gateway API ---------------------------------------------------------------------

    def connect(self, setting: dict[str, Any]) -> None:
        """Start streaming: keys as in `default_setting` (an empty `settings_file` means
        $FOXTROT_SETTINGS if set, else vnpy's own SETTINGS alone). Bad settings (a named file
        that cannot be read included) are written to the log as errors and raised
        (`SettingsError`; `ValueError` for a bad dialog value): nothing starts."""
        merged = {**self.default_setting, **setting}
        policy, maxsize, timeout = check_dialog(merged)
        adapter = str(merged["adapter"])
        with self._lock:
            if self.engine is not None:
                self.write_log("already connected")
                return
            plugins = PluginHost.discover()
            if adapter not in plugins.adapters:
                raise LookupError(
                    f"adapter = {adapter!r}: not installed "
                    f"(installed: {', '.join(sorted(plugins.adapters)) or 'none'})"
                )
            self._log.attach(logger_names(plugins))
            try:
                values, folder = _host_settings()
                engine = engine_for_host(values, merged, folder, plugins)
            except SettingsError as exc:
                for text, level in settings_problems(exc):
                    self._post_log(text, level)
                self._post_log("not connected: the settings have errors", logging.ERROR)
                self._log.detach()
                raise
            except Exception as exc:
                self._post_log(f"not connected: {exc}", logging.ERROR)
                self._log.detach()
                raise
            self.adapter = adapter
            self.exchange = exchange_for(adapter, plugins.adapters[adapter])
            self.timeout = timeout
            engine.add_consumer(
                self._on_stream_tick, name=self.gateway_name, policy=policy, maxsize=maxsize
            )
            engine.start()
            self.engine = engine
        notice = transport_notice(engine)
        if notice:
            self._post_log(notice, logging.WARNING)
        self.write_log(f"connected: {adapter} market data through foxtrot-stream")
        fetch_instruments(engine, [adapter], self._publish_contracts, self._warn)

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
        self._log.detach()

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

    def _publish_contracts(self, adapter: str, instruments: tuple[Instrument, ...]) -> None:
        for instrument in instruments:
            self.on_contract(to_contract_data(instrument, self.gateway_name, self.exchange))
        self.write_log(f"{len(instruments)} {adapter} contracts on exchange {self.exchange.value}")

    def _warn(self, text: str) -> None:
        self._post_log(text, logging.WARNING)

    def _post_log(self, text: str, level: int) -> None:
        self.on_log(LogData(msg=text, level=level, gateway_name=self.gateway_name))


def to_contract_data(instrument: Instrument, gateway_name: str, exchange: Any) -> Any:
    return ContractData(
        gateway_name=gateway_name,
        symbol=instrument.symbol,
        exchange=exchange,
        name=instrument.symbol,
        product=getattr(Product, instrument.product, Product.SPOT),
        size=instrument.size,
        pricetick=instrument.price_tick,
        min_volume=instrument.min_qty,
        net_position=True,
    )


def _host_settings() -> tuple[dict[str, Any], Path | None]:
    return loaded_host_settings("vnpy.trader.setting", "vnpy.trader.utility")
