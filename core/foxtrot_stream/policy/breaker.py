"""The circuit breaker that moves a connection's symbols to HTTP and back (DESIGN §5).

A pure state machine: the clock is injected and nothing here sleeps or logs. Every state change
produces one `Transition` so the I/O layer can log and count it exactly once.

OPEN becomes HALF_OPEN by the passage of time alone, so `state` is computed lazily from the
clock: reading it never mutates anything. That time-driven change is materialised (and its
`Transition` produced) by `poll()`, or implicitly by the next call that acts on the breaker;
`drain_transitions()` hands out every transition in order, whatever call produced it (the shard
supervisor logs from it, so no change is ever missed or logged twice).

Giving up (EXHAUSTED) is the backoff's decision (`websocket.reconnect.max_attempts` counts
reconnection attempts, `backoff.Backoff`): the owner calls `exhaust()` when it runs out, so the
rule lives in one place.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Callable

import attrs

__all__ = ["BreakerState", "CircuitBreaker", "Transition"]

# Enough for any burst between two drains; bounded so an owner that never drains can't leak.
_HISTORY = 64


class BreakerState(enum.Enum):
    """The guide's three states, plus EXHAUSTED: gave up, stays on HTTP until a manual reset."""

    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"
    EXHAUSTED = "EXHAUSTED"


@attrs.frozen
class Transition:
    """One state change: from ``old`` to ``new`` at clock time ``at``, and why."""

    old: BreakerState
    new: BreakerState
    at: float
    reason: str


class CircuitBreaker:
    """CLOSED → OPEN → HALF_OPEN → CLOSED/OPEN, plus EXHAUSTED, driven by recorded outcomes.

    - CLOSED: attempts always allowed (the backoff sets the pace); ``failure_threshold``
      consecutive failures open it.
    - OPEN: no WebSocket attempt until ``recovery_timeout`` has passed since it opened; then
      it reads as HALF_OPEN.
    - HALF_OPEN: exactly one probe (`try_acquire_probe`); its success closes the breaker, its
      failure reopens it and restarts the recovery timer.
    - EXHAUSTED: the owner gave up (`exhaust`, when its backoff ran out of reconnection
      attempts); only `reset` leaves it.

    Methods return the `Transition` they caused (None if the state did not change). Events
    that cannot legitimately happen in a state are ignored rather than raised, because they
    arrive from connections that were already on their way out (a stale success while OPEN, a
    failure after EXHAUSTED): a success while OPEN changes nothing, a failure while OPEN is
    only counted.
    """

    __slots__ = (
        "_clock",
        "_entered_at",
        "_failures",
        "_history",
        "_opened_at",
        "_probe_out",
        "_state",
        "failure_threshold",
        "recovery_timeout",
    )

    def __init__(
        self,
        failure_threshold: int,
        recovery_timeout: float,
        clock: Callable[[], float],
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be at least 1, got {failure_threshold}")
        if not (math.isfinite(recovery_timeout) and recovery_timeout >= 0):
            raise ValueError(
                f"recovery_timeout must be a non-negative number of seconds, got {recovery_timeout}"
            )
        self.failure_threshold = failure_threshold
        self.recovery_timeout = recovery_timeout
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._entered_at = clock()
        self._failures = 0
        self._opened_at: float | None = None
        self._probe_out = False
        self._history: deque[Transition] = deque(maxlen=_HISTORY)

    # --- reading -----------------------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        """The current state; OPEN reads as HALF_OPEN once ``recovery_timeout`` has passed."""
        if self._half_open_due(self._clock()):
            return BreakerState.HALF_OPEN
        return self._state

    @property
    def consecutive_failures(self) -> int:
        """Failures since the last success or reset, counted in every state."""
        return self._failures

    def time_in_state(self) -> float:
        """Seconds spent in the current state (for HALF_OPEN, since the timeout elapsed)."""
        now = self._clock()
        if self._half_open_due(now):
            assert self._opened_at is not None
            return max(0.0, now - (self._opened_at + self.recovery_timeout))
        return max(0.0, now - self._entered_at)

    def remaining_open(self) -> float:
        """Seconds until an OPEN breaker allows its probe; 0.0 in every other state."""
        if self._state is not BreakerState.OPEN or self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.recovery_timeout - self._clock())

    # --- acting ------------------------------------------------------------------------------

    def poll(self) -> Transition | None:
        """Materialise OPEN → HALF_OPEN if the recovery timeout has passed; returns it once."""
        now = self._clock()
        if not self._half_open_due(now):
            return None
        assert self._opened_at is not None
        due = self._opened_at + self.recovery_timeout
        return self._move(BreakerState.HALF_OPEN, due, "recovery_timeout elapsed")

    def try_acquire_probe(self) -> bool:
        """Take the single HALF_OPEN probe: True once, then False until its outcome is recorded.

        Always False outside HALF_OPEN (in CLOSED no probe is needed: just connect).
        """
        self.poll()
        if self._state is not BreakerState.HALF_OPEN or self._probe_out:
            return False
        self._probe_out = True
        return True

    def record_success(self) -> Transition | None:
        """A healthy connection (CLOSED) or a probe that delivered valid data (HALF_OPEN).

        Clears the failure count; HALF_OPEN → CLOSED. Ignored while OPEN or EXHAUSTED.
        """
        self.poll()
        if self._state is BreakerState.CLOSED:
            self._failures = 0
            return None
        if self._state is BreakerState.HALF_OPEN:
            self._failures = 0
            return self._move(BreakerState.CLOSED, self._clock(), "probe succeeded")
        return None

    def record_failure(self) -> Transition | None:
        """A failed attempt (connect error, drop, heartbeat timeout, rejected subscription)."""
        self.poll()
        if self._state is BreakerState.EXHAUSTED:
            return None
        self._failures += 1
        now = self._clock()
        if self._state is BreakerState.CLOSED:
            if self._failures >= self.failure_threshold:
                return self._move(BreakerState.OPEN, now, "failure_threshold reached")
            return None
        if self._state is BreakerState.HALF_OPEN:
            return self._move(BreakerState.OPEN, now, "probe failed")
        return None  # OPEN: counted, the timer keeps running

    def exhaust(self, reason: str = "max_attempts reached") -> Transition | None:
        """Give up now (the owner's `Backoff` ran out); None if already EXHAUSTED."""
        self.poll()
        if self._state is BreakerState.EXHAUSTED:
            return None
        return self._move(BreakerState.EXHAUSTED, self._clock(), reason)

    def reset(self) -> Transition | None:
        """Operator's reset from any state: CLOSED with all counts cleared (None if CLOSED)."""
        self.poll()
        self._failures = 0
        if self._state is BreakerState.CLOSED:
            return None
        return self._move(BreakerState.CLOSED, self._clock(), "manual reset")

    def drain_transitions(self) -> list[Transition]:
        """Every transition since the last drain, oldest first (the last 64 at most).

        Use this or the return values for logging, not both, or lines will be doubled; this
        one also hands out the OPEN → HALF_OPEN change that another call materialised.
        """
        out = list(self._history)
        self._history.clear()
        return out

    # --- internals ---------------------------------------------------------------------------

    def _half_open_due(self, now: float) -> bool:
        # Same expression as remaining_open(), so "0 s remaining" and HALF_OPEN always agree.
        return (
            self._state is BreakerState.OPEN
            and self._opened_at is not None
            and now >= self._opened_at + self.recovery_timeout
        )

    def _move(self, new: BreakerState, at: float, reason: str) -> Transition:
        transition = Transition(self._state, new, at, reason)
        self._state = new
        self._entered_at = at
        self._probe_out = False
        if new is BreakerState.OPEN:
            self._opened_at = at
        elif new is BreakerState.CLOSED:
            self._opened_at = None
        self._history.append(transition)
        return transition
