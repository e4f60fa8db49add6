"""nautilus_trader: a `TradingNode` with its Binance spot data client and an `Actor` that
subscribes to the quote ticks of every symbol and counts them in `on_quote_tick`, its
documented way to receive market data (bookTicker → `QuoteTick` → message bus → data engine →
actor). Pointed at the sender with the data client config's own `base_url_http` and
`base_url_ws` keys; placeholder API keys (the spot instrument provider asks
`/sapi/v1/asset/tradeFee` with them and loads instruments from exchangeInfo)."""

from __future__ import annotations

import os
from importlib.metadata import version

from _common import Meter, parse_args, symbols
from nautilus_trader.adapters.binance import (
    BINANCE,
    BinanceAccountType,
    BinanceDataClientConfig,
    BinanceLiveDataClientFactory,
)
from nautilus_trader.common.actor import Actor
from nautilus_trader.config import InstrumentProviderConfig, LoggingConfig, TradingNodeConfig
from nautilus_trader.live.node import TradingNode
from nautilus_trader.model.data import QuoteTick
from nautilus_trader.model.identifiers import InstrumentId


class Counter(Actor):
    def __init__(self, ids: list[InstrumentId], count: object) -> None:
        super().__init__()
        self.ids = ids
        self.count = count

    def on_start(self) -> None:
        for instrument_id in self.ids:
            self.subscribe_quote_ticks(instrument_id)

    def on_quote_tick(self, tick: QuoteTick) -> None:
        self.count()


def main() -> None:
    args = parse_args()
    meter = Meter(
        args.frames, args.timeout, version("nautilus_trader"), "TradingNode, Actor.on_quote_tick"
    )
    ids = [InstrumentId.from_str(f"{s}.BINANCE") for s in symbols(args.symbols)]
    data = BinanceDataClientConfig(
        api_key="placeholder",
        api_secret="placeholder",
        account_type=BinanceAccountType.SPOT,
        base_url_http=f"http://127.0.0.1:{args.port}",
        base_url_ws=f"ws://127.0.0.1:{args.port}",
        instrument_provider=InstrumentProviderConfig(load_ids=frozenset(ids)),
    )
    config = TradingNodeConfig(
        trader_id="PEERS-001",
        logging=LoggingConfig(log_level="ERROR"),
        data_clients={BINANCE: data},
    )
    node = TradingNode(config=config)
    node.trader.add_actor(Counter(ids, meter.tick))
    node.add_data_client_factory(BINANCE, BinanceLiveDataClientFactory)
    node.build()
    node.run()  # the meter exits the process at the last tick
    os._exit(1)


if __name__ == "__main__":
    main()
