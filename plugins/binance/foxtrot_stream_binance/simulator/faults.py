"""Scripted faults: what a test (or `simulate --fault`) makes the simulator do wrong, and when.

Each fault is bounded in time (a window from now) or in count, and is read by the simulator
on its own loop, so a test sets one and awaits the feed's reaction; nothing here sleeps.
One-off faults (drop, cut, shutdown notice, malformed frames) act on the connections at once,
and `reset_ids` on the market's price paths.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

import attrs

from foxtrot_stream_binance.simulator.prices import PricePath

ALL: frozenset[str] = frozenset({"*"})
"""`silenced()` answer when every symbol is silenced."""


class FaultTarget(Protocol):
    """The connection side of the simulator, which one-off faults act on."""

    def drop_all(self) -> int: ...
    def cut_all(self) -> int: ...
    def shutdown_notice(self, grace: float) -> int: ...
    def send_malformed(self, count: int) -> int: ...
    def end_faults(self) -> None: ...


def _window(seconds: float) -> float:
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"a fault lasts a finite, positive number of seconds, got {seconds}")
    return seconds


def _delay(name: str, seconds: float) -> float:
    if not (seconds >= 0 and math.isfinite(seconds)):
        raise ValueError(f"{name} must be a finite number of seconds >= 0, got {seconds}")
    return seconds


@attrs.define
class Faults:
    """The active faults. Deadlines are `clock()` times (monotonic seconds)."""

    target: FaultTarget | None = None
    shutdown_grace: float = 1.0
    clock: Callable[[], float] = time.monotonic
    paths: Mapping[str, PricePath] = attrs.Factory(dict)
    """The market's price paths by symbol, which the id faults act on."""
    refuse_until: float = 0.0
    stall_until: float = 0.0
    silence_until: float = 0.0
    silence_symbols: frozenset[str] = ALL
    flap_until: float = 0.0
    flap_up: float = 0.0
    """How long a connection accepted while flapping streams before the drop (0: one frame)."""
    refuse_subscriptions_until: float = 0.0
    refused_symbols: frozenset[str] = frozenset()
    slow_handshake_until: float = 0.0
    slow_handshake_delay: float | None = None
    slow_rest_until: float = 0.0
    slow_rest_delay: float | None = None
    rest_error_status: int = 0
    rest_error_count: int = 0
    rest_error_retry_after: float = 1.0
    malformed_pending: int = 0
    """Malformed frames held for the next connection (none was open when asked)."""
    id_jumps: dict[str, int] = attrs.Factory(dict)
    """Symbol: how far its next published bookTicker's update id jumps ahead (`jump_ids`)."""
    log: list[tuple[float, str]] = attrs.Factory(list)
    """(time, what) for each fault set, to line a test's timeline up with the simulator's."""

    def _note(self, what: str) -> float:
        now = self.clock()
        self.log.append((now, what))
        return now

    def _path(self, symbol: str) -> PricePath:
        path = self.paths.get(symbol.upper())
        if path is None:
            raise ValueError(f"{symbol!r} is not a listed symbol")
        return path

    def _need_target(self) -> FaultTarget:
        if self.target is None:
            raise RuntimeError("the simulator is not running")
        return self.target

    # --- setting faults -------------------------------------------------------------------

    def drop_all(self) -> int:
        """Drop every connection at once, as a network failure would (no close handshake)."""
        self._note("drop_all")
        return self._need_target().drop_all()

    def refuse_upgrades(self, seconds: float) -> None:
        """Answer WebSocket upgrades with HTTP 503 for `seconds`."""
        self.refuse_until = self._note(f"refuse_upgrades({seconds})") + _window(seconds)

    def stall(self, seconds: float) -> None:
        """Keep connections open but send nothing (no data, no pings, no pongs, no answers)."""
        self.stall_until = self._note(f"stall({seconds})") + _window(seconds)

    def silence(self, seconds: float, symbols: Iterable[str] | None = None) -> None:
        """No data for `symbols` (all if None) for `seconds`; pings and pongs go on."""
        self.silence_until = self._note(f"silence({seconds}, {symbols})") + _window(seconds)
        self.silence_symbols = ALL if symbols is None else frozenset(s.upper() for s in symbols)

    def malformed(self, count: int) -> int:
        """Send `count` bad frames to every open connection (or the next one, if none is)."""
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        self._note(f"malformed({count})")
        sent = self._need_target().send_malformed(count)
        if not sent:
            self.malformed_pending += count
        return sent

    def flap(self, seconds: float, up: float = 0.0) -> None:
        """For `seconds`, accept each connection, send it one frame, then drop it; with `up`,
        let each one stream normally for `up` seconds before the drop (no close handshake)."""
        _window(seconds)
        _delay("up", up)
        self.flap_until = self._note(f"flap({seconds}, {up})") + seconds
        self.flap_up = up

    def refuse_subscriptions(self, seconds: float, symbols: Iterable[str]) -> None:
        """For `seconds`, refuse streams of `symbols`: a SUBSCRIBE naming any of them is
        answered with an error and subscribes nothing (the connection stays open), and a
        connection URL's streams of them are left out silently."""
        _window(seconds)
        refused = frozenset(s.upper() for s in symbols)
        if not refused:
            raise ValueError("refuse_subscriptions needs at least one symbol")
        now = self._note(f"refuse_subscriptions({seconds}, {sorted(refused)})")
        self.refuse_subscriptions_until = now + seconds
        self.refused_symbols = refused

    def slow_handshake(self, seconds: float, delay: float | None = None) -> None:
        """For `seconds`, hold each accepted WebSocket upgrade `delay` seconds before the 101
        answer (default: until the window ends), as an overloaded exchange's front end does."""
        _window(seconds)
        if delay is not None:
            _delay("delay", delay)
        self.slow_handshake_until = self._note(f"slow_handshake({seconds}, {delay})") + seconds
        self.slow_handshake_delay = delay

    def reset_ids(self, symbol: str) -> None:
        """Restart `symbol`'s book update, trade and aggTrade ids near 1 (the next `u` is 1 to 4,
        the next `t` and `a` 1), as an exchange-side restart does; they grow again from there
        and prices go on where they were."""
        path = self._path(symbol)
        self._note(f"reset_ids({path.symbol})")
        path.restart_ids()

    def jump_ids(self, symbol: str, by: int = 10**9) -> None:
        """The next bookTicker frame published for `symbol` carries an update id `by` higher
        than it should (any size, even past 2**64); the ones after it go on from where they
        were, so all of them are lower. Jumps asked before that frame add up in it."""
        if isinstance(by, bool) or not isinstance(by, int) or by < 1:
            raise ValueError(f"by must be an integer >= 1, got {by!r}")
        path = self._path(symbol)
        self._note(f"jump_ids({path.symbol}, {by})")
        self.id_jumps[path.symbol] = self.id_jumps.get(path.symbol, 0) + by

    def slow_rest(self, seconds: float, delay: float | None = None) -> None:
        """For `seconds`, hold REST answers `delay` seconds (default: until the window ends)."""
        self.slow_rest_until = self._note(f"slow_rest({seconds}, {delay})") + _window(seconds)
        self.slow_rest_delay = delay

    def rest_errors(self, status: int, count: int, retry_after: float = 1.0) -> None:
        """Answer the next `count` REST requests with `status` (429, 418, 5xx, …)."""
        if not 400 <= status <= 599 or count < 1:
            raise ValueError(f"expected an HTTP error status and count >= 1, got {status}, {count}")
        self._note(f"rest_errors({status}, {count})")
        self.rest_error_status = status
        self.rest_error_count = count
        self.rest_error_retry_after = retry_after

    def cut_lifetime(self) -> int:
        """End every connection now, as the 24-hour cut does (a normal close)."""
        self._note("cut_lifetime")
        return self._need_target().cut_all()

    def server_shutdown(self, grace: float | None = None) -> int:
        """Send `serverShutdown` to every connection, then close each after `grace` seconds."""
        grace = self.shutdown_grace if grace is None else grace
        self._note(f"server_shutdown({grace})")
        return self._need_target().shutdown_notice(grace)

    def outage(self, seconds: float) -> None:
        """Drop everything and refuse new connections for `seconds` (REST keeps answering)."""
        self.refuse_upgrades(seconds)
        self.drop_all()

    def clear(self) -> None:
        """End every time-bounded fault now and forget pending counts."""
        self._note("clear")
        self.refuse_until = self.stall_until = self.silence_until = 0.0
        self.flap_until = self.slow_rest_until = self.slow_handshake_until = 0.0
        self.refuse_subscriptions_until = 0.0
        self.silence_symbols = ALL
        self.refused_symbols = frozenset()
        self.flap_up = 0.0
        self.rest_error_count = 0
        self.malformed_pending = 0
        self.id_jumps.clear()
        if self.target is not None:
            self.target.end_faults()  # held handshakes go ahead, flapping ones stay up

    # --- reading them (the simulator, on its loop) ----------------------------------------------

    def refusing(self, now: float) -> bool:
        return now < self.refuse_until

    def stalled(self, now: float) -> bool:
        return now < self.stall_until

    def flapping(self, now: float) -> bool:
        return now < self.flap_until

    def silenced(self, now: float) -> frozenset[str] | None:
        """The silenced symbols (`ALL` for all), or None when nothing is silenced."""
        return self.silence_symbols if now < self.silence_until else None

    def refusing_symbols(self, now: float) -> frozenset[str]:
        """The symbols whose streams are refused at `now` (empty: none)."""
        return self.refused_symbols if now < self.refuse_subscriptions_until else frozenset()

    def handshake_delay(self, now: float) -> float:
        """How long to hold an upgrade accepted at `now` (0: not at all)."""
        if now >= self.slow_handshake_until:
            return 0.0
        if self.slow_handshake_delay is None:
            return self.slow_handshake_until - now
        return self.slow_handshake_delay

    def rest_delay(self, now: float) -> float:
        if now >= self.slow_rest_until:
            return 0.0
        return self.slow_rest_until - now if self.slow_rest_delay is None else self.slow_rest_delay

    def take_rest_error(self) -> tuple[int, float] | None:
        """(status, Retry-After) for the next injected REST error, if one is due."""
        if self.rest_error_count <= 0:
            return None
        self.rest_error_count -= 1
        return self.rest_error_status, self.rest_error_retry_after

    def take_jump(self, symbol: str) -> int:
        """How far the bookTicker being published for `symbol` jumps (0: not at all)."""
        return self.id_jumps.pop(symbol, 0)

    def take_malformed(self) -> int:
        count, self.malformed_pending = self.malformed_pending, 0
        return count
