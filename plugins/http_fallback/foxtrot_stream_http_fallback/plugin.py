"""Entry point of the HTTP fallback plugin: the `http` polling transport and `fallback` hook."""

from __future__ import annotations

from collections.abc import Sequence

from foxtrot_stream.contract.hookspecs import hookimpl
from foxtrot_stream.contract.records import FeedContext, Poller, TransportSpec
from foxtrot_stream_http_fallback.poller import HttpPoller
from foxtrot_stream_http_fallback.settings import HttpFallbackSettings

SETTINGS_KEY = "http_fallback"


@hookimpl
def register_transports() -> list[TransportSpec]:
    return [
        TransportSpec(
            name="http",
            settings_cls=HttpFallbackSettings,
            settings_key=SETTINGS_KEY,
            description="REST polling, batched per request where the exchange allows.",
            role="poll",
        )
    ]


@hookimpl(trylast=True)  # the default poller: another plugin's answer comes first
def fallback(context: FeedContext, symbols: Sequence[str], reason: str) -> Poller:
    settings = context.plugin_settings.get(SETTINGS_KEY) or HttpFallbackSettings()
    return HttpPoller(context, symbols, settings.interval)
