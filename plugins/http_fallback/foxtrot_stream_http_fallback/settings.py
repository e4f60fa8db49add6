"""The HTTP fallback plugin's own keys (`http_fallback.*` in vt_setting.json)."""

from __future__ import annotations

import attrs

from foxtrot_stream.settings import PositiveFloat


@attrs.frozen
class HttpFallbackSettings:
    interval: PositiveFloat = attrs.field(
        default=PositiveFloat(1.0),
        metadata={
            "doc": "Seconds between REST polls for symbols served over HTTP (the guide's "
            "1 update per second)."
        },
    )
