"""Reconnection schedule and the "healthy again" rule (DESIGN §5), as pure state machines.

Nothing here sleeps, logs or reads the wall clock: the feed asks for a delay and does the
waiting itself, so the timeline can be tested exactly and without waiting.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

__all__ = ["Backoff", "HealthGate", "schedule"]


def schedule(base_delay: float, max_delay: float, n: int) -> float:
    """Delay before attempt ``n`` (1-based): ``min(base_delay * 2**(n-1), max_delay)``.

    With the guide's defaults (1.0, 60.0) that is 1, 2, 4, 8, 16, 32, 60, 60 … Computed with
    ``ldexp`` so a huge ``n`` saturates at ``max_delay`` instead of raising ``OverflowError``.
    """
    if n < 1:
        raise ValueError(f"attempt numbers start at 1, got {n}")
    try:
        delay = math.ldexp(base_delay, n - 1)
    except OverflowError:
        return max_delay
    return min(delay, max_delay)


class Backoff:
    """Counts reconnection attempts and says how long to wait before the next one.

    Each failure asks for the next reconnection attempt: ``next_delay()`` records it and says
    how long to wait first. ``max_attempts`` is the guide's "maximum number of reconnection
    attempts": with 3, a dropped connection is retried 3 times; the failure of the third retry
    gets ``None`` (never an exception): giving up is an expected outcome the owner must handle
    (its symbols stay on HTTP polling), not an error. ``reset()`` is for a connection that
    proved healthy (see `HealthGate`), after which counting starts again at attempt 1.
    """

    __slots__ = ("_attempts", "_rng", "base_delay", "jitter", "max_attempts", "max_delay")

    def __init__(
        self,
        base_delay: float,
        max_delay: float,
        max_attempts: int,
        jitter: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        if not (math.isfinite(base_delay) and base_delay > 0):
            raise ValueError(f"base_delay must be a positive number of seconds, got {base_delay}")
        if not (math.isfinite(max_delay) and max_delay >= base_delay):
            raise ValueError(f"max_delay must be finite and >= base_delay, got {max_delay}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        if not 0.0 <= jitter <= 1.0:
            raise ValueError(f"jitter is a fraction in [0, 1], got {jitter}")
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_attempts = max_attempts
        self.jitter = jitter
        # Only used when jitter > 0; a private generator keeps the global one untouched.
        self._rng = rng if rng is not None else random.Random()
        self._attempts = 0

    @property
    def attempts(self) -> int:
        """Reconnection attempts since the last reset (at most ``max_attempts``)."""
        return self._attempts

    @property
    def exhausted(self) -> bool:
        """True once ``max_attempts`` reconnection attempts were made; only `reset` clears it
        (the next failure gets no delay)."""
        return self._attempts >= self.max_attempts

    def next_delay(self) -> float | None:
        """A failure: record reconnection attempt n and return the seconds to wait before it,
        or None when all ``max_attempts`` attempts were already made.

        Attempt n waits ``schedule(base, max, n)``, reduced by up to ``jitter`` of itself so a
        fleet does not reconnect in lockstep; it never exceeds the documented timeline, so
        jitter 0 reproduces it exactly.
        """
        if self.exhausted:
            return None
        self._attempts += 1
        delay = schedule(self.base_delay, self.max_delay, self._attempts)
        if self.jitter:
            delay *= 1.0 - self.jitter * self._rng.random()
        return delay

    def reset(self) -> None:
        """The connection proved healthy: the next failure waits ``base_delay`` again."""
        self._attempts = 0


class HealthGate:
    """Decides when a connection counts as healthy again, so a flapping one can't reset backoff.

    Healthy means both: it delivered valid data, and it has been up for ``hold`` seconds (one
    heartbeat interval) since ``on_connected``. `poll` answers True exactly once per
    connection; the feed then calls ``Backoff.reset()`` and ``CircuitBreaker.record_success()``.
    Kept separate from the breaker because the breaker's probe closes on the first valid data,
    while the backoff waits for this longer proof.
    """

    __slots__ = ("_clock", "_connected_at", "_data", "_fired", "hold")

    def __init__(self, clock: Callable[[], float], hold: float) -> None:
        if not (math.isfinite(hold) and hold >= 0):
            raise ValueError(f"hold must be a non-negative number of seconds, got {hold}")
        self._clock = clock
        self.hold = hold
        self._connected_at: float | None = None
        self._data = False
        self._fired = False

    def on_connected(self) -> None:
        """A new connection is up: start the hold timer and forget the previous connection."""
        self._connected_at = self._clock()
        self._data = False
        self._fired = False

    def on_valid_data(self) -> None:
        """The connection delivered a decoded, valid frame (malformed frames don't count)."""
        if self._connected_at is not None:
            self._data = True

    def on_disconnected(self) -> None:
        """The connection is gone; nothing it did counts any more."""
        self._connected_at = None
        self._data = False
        self._fired = False

    def remaining(self) -> float | None:
        """Seconds until the hold is over (0.0 if over), or None when not connected/already healthy.

        Lets the I/O layer sleep exactly as long as needed instead of polling in a loop.
        """
        if self._connected_at is None or self._fired:
            return None
        return max(0.0, self._connected_at + self.hold - self._clock())

    def poll(self) -> bool:
        """True once per connection, when it has had valid data and ``hold`` seconds up."""
        if self._connected_at is None or self._fired or not self._data:
            return False
        if self._clock() - self._connected_at < self.hold:
            return False
        self._fired = True
        return True
