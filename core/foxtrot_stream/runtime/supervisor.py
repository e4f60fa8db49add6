"""One connection's lifecycle: the shard supervisor.

A feed splits its WebSocket symbols into shards (one connection's worth each). A
`ShardSupervisor` owns one shard's connection from the first connect to the last close:

* **connect and run**: it asks its owner for a connection (the `connect` hook), runs it, and
  when it fails records the failure in its own backoff and breaker (DESIGN §5): reconnect after
  the backoff delay while the breaker is CLOSED; one probe per `recovery_timeout` while it is
  OPEN; nothing while it is EXHAUSTED, until `reset()`;
* **health**: it pings every heartbeat interval and fails the connection when a pong does not
  come back before the next ping, or when no frame at all has arrived for twice the interval,
  unless its owner confirms over REST that the shard's symbols simply did not change (a quiet
  market is not a dead connection); a connection counts as healthy again (`HealthGate`) only
  after it delivered data and stayed up one heartbeat interval, so a flapping exchange cannot
  reset the backoff;
* **rotation**: before the exchange's lifetime cut, or at once on its shutdown notice, it opens
  the successor, waits for its first data, then closes the old connection.

It reports to its owner through `ShardOwner`, a small interface: the feed keeps routing, the
pollers and the hand-over between transports (`coverage`), and never reaches into a
supervisor's connection. Logs follow the guide: ``<Display>`` for connection state,
``<Display>WebSocket`` for reconnects, ``<Display>Error`` for failures; nothing per tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Protocol

import attrs

from foxtrot_stream.contract.records import (
    BackoffPolicy,
    BreakerPolicy,
    Connection,
    ConnectionListener,
    TransportFailure,
    names,
)
from foxtrot_stream.policy.backoff import HealthGate
from foxtrot_stream.policy.breaker import BreakerState, Transition

#: A rotation starts this far into the exchange's connection lifetime.
ROTATE_AT = 0.9
#: Minimum seconds between our pings, whatever the heartbeat setting: pings count against the
#: exchange's incoming-message limit.
MIN_PING_INTERVAL = 1.0
#: Heartbeats go out at most this fraction of an exchange's idle limit apart
#: (`ConnectionLimits.max_idle`).
IDLE_MARGIN = 0.8


class ShardOwner(Protocol):
    """What a shard supervisor reports to (the feed)."""

    def open_connection(
        self, shard: ShardSupervisor, symbols: Sequence[str], listener: ConnectionListener
    ) -> Connection | None:
        """A new, not yet opened connection for `symbols` (the `connect` hook); may raise."""
        ...

    def connection_up(self, shard: ShardSupervisor) -> None:
        """The shard's connection is open (its symbols may now prove themselves)."""
        ...

    def connection_down(self, shard: ShardSupervisor, reason: str) -> None:
        """The shard's open connection is gone (`reason`: a failure kind, or "closed")."""
        ...

    def connection_failed(self, shard: ShardSupervisor, failure: TransportFailure) -> None:
        """A failure DESIGN §5 names, already logged: count it and tell observers."""
        ...

    def breaker_changed(self, shard: ShardSupervisor, transition: Transition) -> None:
        """The shard's breaker changed state (already logged)."""
        ...

    def rejected(self, shard: ShardSupervisor, streams: Sequence[str], error: str) -> None:
        """The exchange refused to (un)subscribe `streams` on the shard's connection."""
        ...

    def malformed(self, reason: str, frame: str | bytes) -> None:
        """A frame could not be decoded (counted; never a failure)."""
        ...

    def subscribing(self, streams: Sequence[str], pending: bool) -> None:
        """A subscription of `streams` was sent (`pending`) or confirmed (not `pending`)."""
        ...

    def control_failed(self) -> None:
        """An (un)subscribe could not be sent on a live connection (already logged)."""
        ...

    def quiet_confirmed(self, symbols: Sequence[str], since: float) -> bool:
        """True if REST has answered for every one of `symbols` since `since` without showing a
        change (their market is quiet: a silent connection is not at fault)."""
        ...


@attrs.frozen
class ShardRecord:
    """A shard's state as published to status (built on demand, never per tick)."""

    id: int
    symbols: tuple[str, ...]
    live: bool
    """A connection is open."""
    breaker: BreakerState
    breaker_seconds_in_state: float
    consecutive_failures: int
    attempts: int
    """Reconnection attempts since the connection was last healthy (the backoff's count)."""
    opened_at: float | None
    """When the current connection opened (feed clock); None while down."""
    connects: int
    reconnects: int
    rotations: int
    failures: dict[str, int]


class _Listener:
    """Receives one connection's reports (`ConnectionListener`) for its supervisor."""

    def __init__(self, shard: ShardSupervisor, probe: bool) -> None:
        self.shard = shard
        self.probe = probe
        self.up = asyncio.Event()
        self.data = asyncio.Event()
        self.opened_at: float | None = None
        self.shutdown = asyncio.Event()
        self.pongs = 0

    def opened(self) -> None:
        self.opened_at = self.shard.clock()
        self.up.set()
        self.shard._opened(self)

    def first_data(self) -> None:
        self.data.set()
        self.shard._first_data(self)

    def pong(self) -> None:
        self.pongs += 1

    def malformed(self, reason: str, frame: str | bytes) -> None:
        self.shard.owner.malformed(reason, frame)

    def server_shutdown(self) -> None:
        self.shutdown.set()

    def rejected(self, streams: Sequence[str], error: str) -> None:
        self.shard.owner.rejected(self.shard, streams, error)

    def subscribing(self, streams: Sequence[str]) -> None:
        self.shard.owner.subscribing(streams, True)

    def subscribed(self, streams: Sequence[str]) -> None:
        self.shard.owner.subscribing(streams, False)


class ShardSupervisor:
    """Supervises one shard's connection; see the module docstring. Run `run()` as a task."""

    def __init__(
        self,
        shard_id: int,
        symbols: Sequence[str],
        owner: ShardOwner,
        *,
        backoff: BackoffPolicy,
        breaker: BreakerPolicy,
        heartbeat: float,
        recovery_timeout: float,
        max_lifetime: float,
        max_idle: float | None = None,
        display: str,
        clock: Callable[[], float],
    ) -> None:
        self.id = shard_id
        self.symbols: list[str] = list(symbols)
        self.owner = owner
        self.backoff = backoff
        self.breaker = breaker
        self.heartbeat = heartbeat
        self.recovery_timeout = recovery_timeout
        self.max_lifetime = max_lifetime
        self.max_idle = max_idle
        self.clock = clock
        self.log = logging.getLogger(display)
        self.ws_log = logging.getLogger(f"{display}WebSocket")
        self.error_log = logging.getLogger(f"{display}Error")
        self.conn: Connection | None = None
        self.opened_at: float | None = None
        self.quiet_since: float | None = None
        """Since when the open connection has received no frame, as the health watch last saw
        it (None: down)."""
        self._quiet_frames = -1
        """The connection's frame count when `quiet_since` was taken: if it moved since, the
        connection is not silent, whatever the watch's step."""
        self.connects = 0
        self.reconnects = 0
        self.rotations = 0
        self.failures: dict[str, int] = {}
        self._successor: tuple[Connection, asyncio.Task[None], _Listener] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- what the feed reads -------------------------------------------------------------------

    @property
    def live(self) -> bool:
        """A connection of this shard is open."""
        return self.opened_at is not None

    def silent_for(self) -> float:
        """Seconds the open connection has gone without any frame (0.0 when down, or when a
        frame arrived since the health watch last looked: the watch samples every half
        heartbeat, so its `quiet_since` alone would call a busy connection silent for up to a
        step)."""
        since, conn = self.quiet_since, self.conn
        if since is None or conn is None or not self.live or conn.frames != self._quiet_frames:
            return 0.0
        return max(0.0, self.clock() - since)

    def down_reason(self) -> str:
        """Why the shard is not streaming, in a few words (for status)."""
        state = self.breaker.state
        if state is BreakerState.EXHAUSTED:
            return "WebSocket attempts exhausted: reset to retry"
        if state is BreakerState.OPEN:
            return f"circuit breaker OPEN: next probe in {self.breaker.remaining_open():.0f}s"
        if state is BreakerState.HALF_OPEN:
            return "circuit breaker HALF_OPEN: probing"
        if self.connects == 0:
            return "connecting"
        return "reconnecting"

    def record(self) -> ShardRecord:
        return ShardRecord(
            id=self.id,
            symbols=tuple(self.symbols),
            live=self.live,
            breaker=self.breaker.state,
            breaker_seconds_in_state=self.breaker.time_in_state(),
            consecutive_failures=self.breaker.consecutive_failures,
            attempts=self.backoff.attempts,
            opened_at=self.opened_at,
            connects=self.connects,
            reconnects=self.reconnects,
            rotations=self.rotations,
            failures=dict(self.failures),
        )

    # --- control -------------------------------------------------------------------------------

    async def add(self, symbols: Sequence[str]) -> None:
        """Carry more symbols (on the live connection too; a connection still opening takes
        them when its handshake completes)."""
        self.symbols.extend(s for s in symbols if s not in self.symbols)
        if self.conn is not None:
            await self._control(self.conn.subscribe, "subscribe", symbols)

    async def remove(self, symbols: Sequence[str]) -> None:
        gone = set(symbols)
        self.symbols = [s for s in self.symbols if s not in gone]
        if self.conn is not None and self.symbols:
            await self._control(self.conn.unsubscribe, "unsubscribe", symbols)

    async def resubscribe(self, symbol: str) -> None:
        """Unsubscribe and subscribe again one symbol the exchange stopped sending."""
        conn = self.conn
        if conn is not None and await self._control(conn.unsubscribe, "unsubscribe", [symbol]):
            await self._control(conn.subscribe, "subscribe", [symbol])

    async def fail(self, kind: str, detail: str) -> None:
        """End the open connection as failed (e.g. silent while REST shows changes)."""
        conn = self.conn
        if conn is not None:
            await conn.close(TransportFailure(kind, detail))

    def reset(self) -> bool:
        """An operator's reset: an open or exhausted breaker closes and the shard retries at
        once. False if the breaker was CLOSED (nothing to reset)."""
        if self.breaker.state is BreakerState.CLOSED:
            return False
        self.breaker.reset()
        self._transitions()
        self.backoff.reset()
        self._wake.set()
        return True

    async def stop(self) -> None:
        """Close the connection and end every task of this shard."""
        self._stopping = True
        self._wake.set()
        if self.conn is not None:
            with contextlib.suppress(Exception):  # stopping: a failing close changes nothing
                await self.conn.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):  # cancelled above; failures were reported
                await task

    # --- the supervision loop ------------------------------------------------------------------

    async def run(self) -> None:
        breaker = self.breaker
        while not self._stopping and self.symbols:
            breaker.poll()
            self._transitions()
            state = breaker.state
            if state is BreakerState.EXHAUSTED:
                await self._wait(None)
                continue
            if state is BreakerState.OPEN:
                remaining = breaker.remaining_open()
                if remaining > 0:
                    await self._wait(remaining)
                    continue
            probe = False
            if breaker.state is BreakerState.HALF_OPEN:
                acquired = breaker.try_acquire_probe()
                self._transitions()
                if not acquired:
                    await self._wait(self.heartbeat)
                    continue
                probe = True
                self.ws_log.info(
                    "Reconnecting... (probe, attempt %d, after %gs open)",
                    self.backoff.attempts,
                    self.recovery_timeout,
                )
            failure = await self._connect_and_run(probe)
            if self._stopping:
                return
            if failure is not None:
                await self._failed(failure)

    async def _connect_and_run(self, probe: bool) -> TransportFailure | None:
        listener = _Listener(self, probe)
        try:
            conn = self.owner.open_connection(self, list(self.symbols), listener)
        except Exception as exc:
            return TransportFailure("connect_failed", f"connect hook raised {exc!r}")
        if conn is None:
            return TransportFailure("connect_failed", "no transport plugin answers 'websocket'")
        self.conn = conn
        run = self._spawn(conn.run(), f"conn-{self.id}")
        while True:
            watch = self._spawn(self._watch(conn, listener), f"watch-{self.id}")
            rotation = self._spawn(self._rotation(listener), f"rotate-{self.id}")
            failure: TransportFailure | None = None
            try:
                await asyncio.shield(run)
            except TransportFailure as exc:
                failure = exc
            except asyncio.CancelledError:
                run.cancel()
                with contextlib.suppress(BaseException):  # cancelled: whatever close says, go
                    await conn.close()
                raise
            except Exception as exc:
                failure = TransportFailure("dropped", f"{type(exc).__name__}: {exc}")
            finally:
                watch.cancel()
                rotation.cancel()
            successor = self._successor
            if successor is not None and successor[0] is not conn:
                # a rotation replaced this connection: supervise the new one from here on
                conn, run, listener = successor
                self._successor = None
                continue
            self.conn = None
            if self.opened_at is not None:  # it was up (a failed connect never was)
                self.opened_at = None
                self.quiet_since = None
                self.owner.connection_down(self, failure.kind if failure is not None else "closed")
            with contextlib.suppress(Exception):  # it already failed: closing is best effort
                await conn.close()
            return failure

    def _opened(self, listener: _Listener) -> None:
        self.opened_at = listener.opened_at
        self.quiet_since = self.opened_at
        self._quiet_frames = -1  # the watch takes the first count
        self.connects += 1
        self.log.info("WebSocket connection established")
        self.owner.connection_up(self)

    def _first_data(self, listener: _Listener) -> None:
        if listener.probe and self.breaker.state is BreakerState.HALF_OPEN:
            # the probe delivered: the breaker closes and the WebSocket is tried normally again
            # (its symbols stay polled until it has proven itself: see coverage)
            self.breaker.record_success()
            self._transitions()

    async def _failed(self, failure: TransportFailure) -> None:
        kind = failure.kind
        self.failures[kind] = self.failures.get(kind, 0) + 1
        self.error_log.error("WebSocket error... %s: %s", kind, failure.detail)
        self.owner.connection_failed(self, failure)
        self.breaker.record_failure()
        delay = self.backoff.next_delay()
        if delay is None:
            self.breaker.exhaust()
        self._transitions()
        state = self.breaker.state
        if state is BreakerState.EXHAUSTED or state is BreakerState.OPEN:
            return  # the loop waits for a reset, or for the recovery timeout, then probes
        self.reconnects += 1
        self.ws_log.info("Reconnecting... (attempt %d, delay %gs)", self.backoff.attempts, delay)
        await self._wait(delay)

    def _transitions(self) -> None:
        """Log and report every breaker change since the last call, in order."""
        for transition in self.breaker.drain_transitions():
            self._log_transition(transition)
            self.owner.breaker_changed(self, transition)

    def _log_transition(self, transition: Transition) -> None:
        old, new = transition.old, transition.new
        if new is BreakerState.OPEN and old is BreakerState.HALF_OPEN:
            self.error_log.warning(
                "circuit breaker OPEN again: the probe failed; next probe in %gs",
                self.recovery_timeout,
            )
        elif new is BreakerState.OPEN:
            self.error_log.warning(
                "circuit breaker OPEN after %d consecutive failures: WebSocket attempts pause; "
                "WebSocket probe in %gs (its symbols are served by HTTP polling meanwhile)",
                self.breaker.failure_threshold,
                self.recovery_timeout,
            )
        elif new is BreakerState.HALF_OPEN:
            self.log.info("circuit breaker HALF_OPEN: probing the WebSocket")
        elif new is BreakerState.CLOSED and old is not BreakerState.CLOSED:
            self.log.info("circuit breaker CLOSED (was %s)", old.value)
        elif new is BreakerState.EXHAUSTED:
            self.error_log.error(
                "WebSocket gave up after %d reconnection attempts: staying on HTTP polling "
                "until reset (Feed.reset() or the status server's reset control)",
                self.backoff.max_attempts,
            )

    async def _wait(self, seconds: float | None) -> None:
        """Sleep, cut short by `reset()` or `stop()`."""
        self._wake.clear()
        if self._stopping:
            return
        try:
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        except TimeoutError:
            pass  # the sleep ran its full length: the usual way out

    # --- health --------------------------------------------------------------------------------

    async def _watch(self, conn: Connection, listener: _Listener) -> None:
        """Heartbeat and health of one connection: ping every interval, fail on a missing pong
        or on twice the interval without any frame (unless REST confirms a quiet market), and
        declare it healthy after data and one interval up (`HealthGate`)."""
        clock = self.clock
        interval = self.heartbeat
        ping_every = max(interval, MIN_PING_INTERVAL)
        if self.max_idle is not None:  # the exchange closes a connection we are silent on
            ping_every = min(ping_every, max(MIN_PING_INTERVAL, IDLE_MARGIN * self.max_idle))
        step = min(interval, ping_every) / 2
        await listener.up.wait()
        gate = HealthGate(clock, interval)
        gate.on_connected()
        frames = self._quiet_frames = conn.frames
        quiet_since = last_ping = clock()
        self.quiet_since = quiet_since
        pinged = False
        pongs = listener.pongs
        while True:
            await asyncio.sleep(step)
            now = clock()
            if listener.data.is_set():
                gate.on_valid_data()
            if gate.poll():
                self._healthy()
            if conn.frames != frames:
                frames = self._quiet_frames = conn.frames
                quiet_since = now
                self.quiet_since = now
            elif now - quiet_since >= 2 * interval and not self.owner.quiet_confirmed(
                self.symbols, quiet_since
            ):
                await conn.close(
                    TransportFailure("no_data", f"no data for {now - quiet_since:.1f}s")
                )
                return
            if now - last_ping >= ping_every:
                if pinged and listener.pongs == pongs:
                    await conn.close(
                        TransportFailure(
                            "pong_timeout", f"no pong within {now - last_ping:.1f}s of our ping"
                        )
                    )
                    return
                pongs, last_ping, pinged = listener.pongs, now, True
                with contextlib.suppress(ConnectionError, RuntimeError):  # failing: run() says
                    await conn.ping()

    def _healthy(self) -> None:
        if self.breaker.state is BreakerState.CLOSED:
            self.breaker.record_success()
            self._transitions()
        if self.backoff.attempts:
            self.log.info("WebSocket healthy again; reconnection backoff reset")
        self.backoff.reset()

    # --- rotation ------------------------------------------------------------------------------

    async def _rotation(self, listener: _Listener) -> None:
        """Replace the connection before the exchange's lifetime cut or on its shutdown notice:
        open the new one, wait for its first data, then close the old one."""
        await listener.data.wait()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.max_lifetime * ROTATE_AT):
                await listener.shutdown.wait()
        reason = "server shutdown notice" if listener.shutdown.is_set() else "lifetime"
        await self._rotate(reason)

    async def _rotate(self, reason: str) -> None:
        old = self.conn
        if old is None:
            return
        self.log.info("rotating WebSocket connection (%s)", reason)
        listener = _Listener(self, probe=False)
        conn = self.owner.open_connection(self, list(self.symbols), listener)
        if conn is None:
            return
        run = self._spawn(conn.run(), f"conn-{self.id}")
        handed_over = False
        try:
            waiter = asyncio.ensure_future(listener.data.wait())
            try:
                await asyncio.wait(
                    {run, waiter},
                    timeout=4 * self.heartbeat + 10,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                waiter.cancel()
            if not listener.data.is_set():
                self.error_log.warning("rotation failed: the new connection sent no data")
                return
            if self.conn is not old:
                return  # the old one is already gone: the loop reconnects
            self.rotations += 1
            self._successor = (conn, run, listener)
            self.conn = conn
            handed_over = True
            await old.close()
        finally:
            if not handed_over:  # failed, superseded or cancelled: the new one goes too
                with contextlib.suppress(Exception):  # best effort on a connection we drop
                    await conn.close()
                run.cancel()

    # --- helpers -------------------------------------------------------------------------------

    async def _control(
        self,
        send: Callable[[Sequence[str]], Awaitable[None]],
        action: str,
        symbols: Sequence[str],
    ) -> bool:
        """(Un)subscribe on a live connection. A send that fails means the connection is
        failing: its own run reports that, and the reconnect subscribes every symbol of the
        shard, so nothing is lost; the failed send is logged and counted, not raised."""
        try:
            await send(symbols)
        except Exception as exc:
            self.owner.control_failed()
            self.error_log.warning(
                "could not %s %s on a live connection (%s: %s); its reconnect will",
                action,
                names(symbols),
                type(exc).__name__,
                exc,
            )
            return False
        return True

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
