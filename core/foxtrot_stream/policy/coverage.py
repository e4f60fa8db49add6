"""Which transport serves each symbol: the liveness contract as a pure state machine.

The contract (docs/user-guide.md): while the exchange's REST API answers, every change of a
wanted symbol's quote reaches consumers, itself or a newer quote, within

    B = quiet_after + check step + max(poll interval, R) + R

(`quiet_after` is half the heartbeat interval, the check step min(quiet_after / 2, 1 s), R the
REST round trip: 17 s plus one round trip at the guide's defaults; `feed.liveness_bound`). The
rules that keep it, per symbol:

* **HTTP until proven.** A symbol is polled whenever its WebSocket has not proven that it
  delivers it: before its connection opens, while it reconnects or backs off, while the breaker
  is open or exhausted, when its subscription was refused. The breaker only decides when the
  WebSocket is tried again; it never decides whether a symbol is served.
* **Make before break, HTTP → WebSocket.** Polling stops only after the WebSocket has delivered
  the symbol for `prove_for` seconds (one heartbeat interval) and delivers it still.
* **Make before break, WebSocket → HTTP.** A streamed symbol that has had no WebSocket update for
  `quiet_after` seconds is polled again *before* anyone declares its connection dead. Its quote
  may simply not have changed (a quiet market): REST then answers what the consumers already
  have, nothing is delivered, and the symbol is still shown as served by the WebSocket
  (`VERIFYING`). If REST shows a change that the WebSocket did not deliver within `grace`
  seconds, the WebSocket has silently lost the symbol: it is served by HTTP until the WebSocket
  proves itself again, and the owner is told (`Decisions.stale`) so that it can resubscribe or
  fail the connection.

Pure: the caller passes times and the sequencer's counts in and acts on the `Decisions`.
Nothing here runs per tick: `evaluate` reads each symbol's streamed-tick count once per step.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable

import attrs

__all__ = ["Coverage", "Decisions", "Serving"]


class Serving(enum.Enum):
    HTTP = "http"
    """Polled: the WebSocket has not proven (or no longer proves) that it delivers the symbol."""
    WEBSOCKET = "websocket"
    """Streamed and not polled."""
    VERIFYING = "verifying"
    """Streamed, but quiet for `quiet_after`: polled to verify that nothing changed."""

    @property
    def polled(self) -> bool:
        return self is not Serving.WEBSOCKET

    @property
    def transport(self) -> str:
        """What status reports: a quiet symbol being verified is still served by the WebSocket."""
        return "http" if self is Serving.HTTP else "websocket"


@attrs.define(slots=True)
class _Symbol:
    serving: Serving = Serving.HTTP
    reason: str = "connecting"
    """Why it is on HTTP (or, when VERIFYING, why it is polled)."""
    count: int = 0
    """The sequencer's streamed-tick count for it at the last evaluation."""
    last_ws: float | None = None
    """No later than the last WebSocket delivery (the evaluation before the count grew)."""
    run_since: float | None = None
    """No earlier than the first delivery of the current unbroken WebSocket run."""
    rest_at: float | None = None
    """A polled quote reached consumers (a change) at this time; judged `grace` later."""
    rest_count: int = 0
    """The streamed count when that polled quote was delivered."""
    stale: int = 0
    """REST-shown changes the WebSocket missed since the symbol was last proven."""
    refused: str | None = None
    """The exchange's answer when it refused the symbol's subscription (until proven)."""


@attrs.define
class Decisions:
    """What the owner must do after an `evaluate` or `down` call."""

    poll: list[str] = attrs.Factory(list)
    """Start polling these."""
    unpoll: list[str] = attrs.Factory(list)
    """Stop polling these: the WebSocket proved it delivers them."""
    stale: list[str] = attrs.Factory(list)
    """REST showed a change of these that their live WebSocket did not deliver."""
    changed: list[str] = attrs.Factory(list)
    """Symbols whose reported transport changed."""

    def __bool__(self) -> bool:
        return bool(self.poll or self.unpoll or self.stale or self.changed)


@attrs.define
class Coverage:
    """Per-symbol serving state for one feed's WebSocket-routed symbols (see module docstring).

    `open_for(symbol)`, passed to `evaluate`, says how long the symbol's connection has been
    open (None: it is not); `down_reason(symbol)` why it is not (for status).
    """

    quiet_after: float
    prove_for: float
    grace: float
    _symbols: dict[str, _Symbol] = attrs.field(factory=dict, init=False)
    _last_eval: float | None = attrs.field(default=None, init=False)

    # --- membership ------------------------------------------------------------------------

    def add(self, symbol: str, count: int, reason: str = "connecting") -> None:
        """A symbol routed to the WebSocket: on HTTP until its WebSocket proves itself."""
        self._symbols[symbol] = _Symbol(reason=reason, count=count)

    def remove(self, symbol: str) -> None:
        self._symbols.pop(symbol, None)

    def __contains__(self, symbol: str) -> bool:
        return symbol in self._symbols

    def __len__(self) -> int:
        return len(self._symbols)

    # --- reading -------------------------------------------------------------------------

    def serving(self, symbol: str) -> Serving | None:
        state = self._symbols.get(symbol)
        return state.serving if state is not None else None

    def reason(self, symbol: str) -> str:
        state = self._symbols.get(symbol)
        return state.reason if state is not None else ""

    def polled(self) -> set[str]:
        """Every symbol that must be polled now."""
        return {s for s, st in self._symbols.items() if st.serving.polled}

    def lost(self) -> list[str]:
        """Symbols on HTTP because their live WebSocket lost them (stale) or refused them, and
        not delivering again yet: worth a new subscription now and then."""
        return [
            s
            for s, st in self._symbols.items()
            if st.serving is Serving.HTTP
            and st.run_since is None
            and (st.stale or st.refused is not None)
        ]

    def pending_evidence(self, symbol: str) -> bool:
        state = self._symbols.get(symbol)
        return state is not None and state.rest_at is not None

    # --- events --------------------------------------------------------------------------

    def down(self, symbols: Iterable[str], reason: str) -> Decisions:
        """Their connection is not open (failed, closed, backing off, breaker open, …)."""
        out = Decisions()
        for symbol in symbols:
            state = self._symbols.get(symbol)
            if state is None:
                continue
            state.run_since = None
            state.reason = reason
            if state.serving is not Serving.HTTP:
                if not state.serving.polled:
                    out.poll.append(symbol)
                state.serving = Serving.HTTP
                out.changed.append(symbol)
        return out

    def refused(self, symbols: Iterable[str], error: str) -> None:
        """The exchange refused to stream these: they stay on HTTP, and status says why."""
        for symbol in symbols:
            state = self._symbols.get(symbol)
            if state is not None:
                state.refused = error
                if state.serving is Serving.HTTP:
                    state.reason = self._http_reason(state)  # status says why at once

    def rest_delivered(self, symbol: str, now: float, count: int) -> None:
        """A polled quote reached consumers: REST saw a change. `count` is the symbol's
        streamed count at that moment; if the WebSocket delivers nothing within `grace`, it
        missed the change."""
        state = self._symbols.get(symbol)
        if state is not None and state.rest_at is None:
            state.rest_at = now
            state.rest_count = count

    # --- the periodic step -----------------------------------------------------------------

    def evaluate(
        self,
        now: float,
        counts: Callable[[str], int],
        open_for: Callable[[str], float | None],
        down_reason: Callable[[str], str],
    ) -> Decisions:
        """Apply the rules to every symbol: `counts(symbol)` is its streamed-tick count,
        `open_for(symbol)` how long its connection has been open (None: it is not)."""
        out = Decisions()
        before = self._last_eval if self._last_eval is not None else now
        self._last_eval = now
        quiet, prove, grace = self.quiet_after, self.prove_for, self.grace
        for symbol, state in self._symbols.items():
            count = counts(symbol)
            grew = count > state.count
            state.count = count
            opened = open_for(symbol)
            if opened is None:
                state.rest_at = None  # nothing to judge: it is polled for now anyway
                if state.serving is not Serving.HTTP or state.run_since is not None:
                    state.run_since = None
                    if state.serving is Serving.WEBSOCKET:
                        out.poll.append(symbol)
                    if state.serving is not Serving.HTTP:
                        out.changed.append(symbol)
                    state.serving = Serving.HTTP
                state.reason = down_reason(symbol)
                continue
            if grew:
                state.last_ws = before
                if state.run_since is None:
                    state.run_since = now
            if state.rest_at is not None:
                if count > state.rest_count:
                    state.rest_at = None  # the WebSocket delivered after it: a race, no loss
                elif now - state.rest_at >= grace:
                    at, state.rest_at = state.rest_at, None
                    # only a change REST showed while the connection was open counts, and a
                    # symbol not yet streaming only once its connection had time to deliver it
                    if now - at <= opened and (
                        state.serving is not Serving.HTTP
                        or state.run_since is not None
                        or opened >= prove
                    ):
                        self._missed(symbol, state, out)
            serving = state.serving
            if serving is Serving.HTTP:
                if (
                    state.run_since is not None
                    and now - state.run_since >= prove
                    and state.last_ws is not None
                    and now - state.last_ws <= quiet
                    and state.rest_at is None  # no change shown by REST awaits judgement
                ):
                    state.serving = Serving.WEBSOCKET
                    state.reason = ""
                    state.stale = 0
                    state.refused = None
                    out.unpoll.append(symbol)
                    out.changed.append(symbol)
                else:
                    state.reason = self._http_reason(state)
            elif serving is Serving.WEBSOCKET:
                if state.last_ws is None or now - state.last_ws > quiet:
                    state.serving = Serving.VERIFYING
                    state.reason = "quiet on the WebSocket: REST verifies it"
                    out.poll.append(symbol)
            elif grew:  # VERIFYING, and the WebSocket delivers again
                state.serving = Serving.WEBSOCKET
                state.reason = ""
                out.unpoll.append(symbol)
        return out

    @staticmethod
    def _http_reason(state: _Symbol) -> str:
        if state.run_since is not None:
            return "proving the WebSocket"
        if state.refused is not None:
            return f"subscription refused ({state.refused})"
        if state.stale:
            return "stale on WebSocket: REST shows changes it does not deliver"
        return "waiting for its first WebSocket update"

    def _missed(self, symbol: str, state: _Symbol, out: Decisions) -> None:
        state.run_since = None
        state.stale += 1
        out.stale.append(symbol)
        if state.serving is Serving.WEBSOCKET:
            out.poll.append(symbol)
        if state.serving is not Serving.HTTP:
            state.serving = Serving.HTTP
            out.changed.append(symbol)
        state.reason = self._http_reason(state)

    def stale_count(self, symbol: str) -> int:
        state = self._symbols.get(symbol)
        return state.stale if state is not None else 0
