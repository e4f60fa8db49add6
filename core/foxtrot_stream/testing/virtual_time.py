"""An asyncio event loop on virtual time: sleeps and timeouts take no real time.

Orchestration logic (supervisors, failover, hand-over) is all timers: backoff delays, heartbeat
intervals, breaker timeouts. Run against real sockets, a minute of those costs a minute. On this
loop, `loop.time()` is a number that jumps straight to the next scheduled timer whenever nothing
is ready to run, so a simulated hour of reconnects and polls runs in milliseconds, exactly and
repeatably. Use it with fake transports (nothing here does I/O): the loop has no way to wait
for a real socket, and a run that would have to (or that waits for nothing at all) raises
`Deadlock` instead of hanging.

    loop = VirtualTimeLoop()
    loop.run_until_complete(feed.start(...))
    loop.advance(30.0)          # 30 simulated seconds of everything the feed does
    loop.close()

`loop.time` is the clock to inject into the code under test (`Feed(clock=loop.time)`).
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Mapping
from typing import Any

__all__ = ["Deadlock", "VirtualTimeLoop"]


class Deadlock(RuntimeError):
    """Nothing is ready, no timer is scheduled, and the awaited result never comes."""


class _Keys(Mapping[Any, selectors.SelectorKey]):
    def __init__(self, keys: dict[Any, selectors.SelectorKey]) -> None:
        self._keys = keys

    def __getitem__(self, fileobj: Any) -> selectors.SelectorKey:
        return self._keys[fileobj]

    def __iter__(self) -> Any:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


class _VirtualSelector(selectors.BaseSelector):
    """Never reports a file ready; waiting `timeout` seconds moves the loop's clock instead.

    The loop registers only its own self-pipe (used by `call_soon_threadsafe`, which virtual
    runs do not need), so no registered file is ever expected to become ready."""

    def __init__(self) -> None:
        self._keys: dict[Any, selectors.SelectorKey] = {}
        self.loop: VirtualTimeLoop | None = None

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        key = selectors.SelectorKey(fileobj, _fd(fileobj), events, data)
        self._keys[fileobj] = key
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._keys.pop(fileobj)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        assert self.loop is not None
        if timeout is None:
            raise Deadlock(
                "the virtual-time loop has nothing to run and no timer scheduled: the awaited "
                "result can never come"
            )
        if timeout > 0:
            self.loop._now += timeout
        return []

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return _Keys(self._keys)

    def close(self) -> None:
        self._keys.clear()


def _fd(fileobj: Any) -> int:
    return fileobj if isinstance(fileobj, int) else int(fileobj.fileno())


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector loop whose `time()` is virtual and jumps to the next timer when idle."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        selector = _VirtualSelector()
        super().__init__(selector)
        selector.loop = self

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Run everything that happens in the next `seconds` of virtual time."""
        if seconds < 0:
            raise ValueError(f"time only moves forward, got {seconds}")
        self.run_until_complete(asyncio.sleep(seconds))

    def run_for(self, seconds: float, coro: Any) -> Any:
        """Run `coro`, failing with TimeoutError if it takes more than `seconds` virtual."""

        async def bounded() -> Any:
            async with asyncio.timeout(seconds):
                return await coro

        return self.run_until_complete(bounded())
