"""Which event loop a process runs: uvloop when installed (`foxtrot-stream[fast]`), else asyncio's.

uvloop cuts the per-frame cost of frames that arrive one per packet (each a wake-up of the loop
and a trip through its callbacks): see benchmarks/README.md. The choice is per loop, never a
global policy, so an embedding host (and pytest-asyncio) keeps whatever loop it runs itself.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Literal

import attrs

#: Overrides the choice where there is no `--loop` flag (StreamEngine, the Foxtrot and vnpy
#: integrations): `auto` (the default), `asyncio` or `uvloop`.
ENV_VAR = "FOXTROT_STREAM_LOOP"
CHOICES = ("auto", "asyncio", "uvloop")

Choice = Literal["auto", "asyncio", "uvloop"]


class LoopChoiceError(ValueError):
    """An unknown choice, or `uvloop` asked for and not installed."""


@attrs.frozen
class LoopKind:
    """The loop to build: `factory()` makes one; `name` is what logs and `plugins` show."""

    name: str
    factory: Callable[[], asyncio.AbstractEventLoop]
    asked: str


def choose(choice: str | None = None) -> LoopKind:
    """The loop for `choice` (None: `$FOXTROT_STREAM_LOOP`, else `auto`).

    `auto` is uvloop when it imports, else asyncio's default loop; `uvloop` raises
    `LoopChoiceError` when it is not installed rather than silently running the other one."""
    asked = (choice or os.environ.get(ENV_VAR, "") or "auto").strip().lower()
    if asked not in CHOICES:
        source = "" if choice else f" (from ${ENV_VAR})"
        raise LoopChoiceError(f"event loop {asked!r}{source}: expected one of {', '.join(CHOICES)}")
    if asked != "asyncio":
        try:
            import uvloop
        except ImportError:
            if asked == "uvloop":
                raise LoopChoiceError(
                    "event loop 'uvloop': uvloop is not installed "
                    "(pip install 'foxtrot-stream[fast]')"
                ) from None
        else:
            version = getattr(uvloop, "__version__", "")
            return LoopKind(f"uvloop {version}".strip(), uvloop.new_event_loop, asked)
    return LoopKind("asyncio", asyncio.new_event_loop, asked)
