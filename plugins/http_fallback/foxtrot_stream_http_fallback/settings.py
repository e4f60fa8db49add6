"""The HTTP fallback plugin's own keys (`http_fallback.*` in vt_setting.json)."""

from __future__ import annotations

import attrs

from foxtrot_stream.config.settings import PositiveFloat, ranged


@attrs.frozen
class HttpFallbackSettings:
    interval: PositiveFloat = attrs.field(
        default=PositiveFloat(1.0),
        metadata=ranged(
            "Seconds between REST polls for symbols served over HTTP (the guide's 1 update per "
            "second). At least 0.05 s: one batched request each time, held back near the "
            "exchange's request-weight limit; at most 60 s.",
            low=0.05,
            high=60.0,
        ),
    )
