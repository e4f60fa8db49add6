"""`StreamEngine`: what a threaded host (Foxtrot, vnpy) loads at startup.

The host's threads never touch a `Feed`: the engine owns one asyncio loop in one background
thread ("foxtrot-stream-loop"), and every public method hands its work to that loop and waits
for the answer. Ticks go the other way through consumers: each registered callback has its own
thread and its own bounded queue, filled by the loop without ever waiting for the consumer.

Threads, and why one per consumer: a consumer is host code (a gateway putting events on an
event engine, a recorder writing to disk) and may be slow at times. With a thread each, a slow
consumer delays only itself, and each has its own queue, policy and drop counter; a shared
dispatcher would let one slow callback hold back all the others. Hosts register a handful of
consumers, so the thread count stays small.

The hand-off: each consumer's queue is itself a consumer of every feed, so the loop appends
each tick to it without a lock (unless the consumer is behind) and wakes the consumer's thread
at most once per batch: the first tick after the thread took its last batch schedules one
wake-up for the end of the loop iteration, and the thread then takes everything waiting in one
go. A thread that is still busy when ticks arrive is not woken at all; it takes them next.

Queue policies (the loop never blocks; every tick not delivered is counted as dropped;
`maxsize` counts the ticks queued, waiting or in the batch the thread is working through):

* ``"conflate"`` (default): lossless while the consumer keeps up: every tick, in arrival
  order, as long as at most `maxsize` are queued. Beyond that the consumer is behind: what is
  waiting collapses to the newest tick per symbol (`LatestPerSymbol`: a newer quote replaces
  an older in its place, at most `maxsize` symbols), each superseded tick counted as dropped,
  and new ticks conflate into it until the thread takes it as its next batch; then ticks queue
  in order again. Memory stays bounded by the symbols (plus the batch in hand).
* ``"drop_oldest"``: every tick in arrival order, at most `maxsize` queued; beyond, the oldest
  waiting tick is dropped.

Either way a consumer never gets an older quote of a symbol after a newer one, and
``received = delivered + dropped + queued``.

Reading from a source instead of the exchange: when the settings say ``<key>.consume`` for an
installed source (the Redis plugin's ``redis.consume``), each adapter's feed is a `SourceFeed`
that reads the adapter's ticks from it (published by a feed elsewhere): the same consumers,
subscribe and unsubscribe, and a `status()` with the source's health under ``source``; its
instruments are the list the publishing feeds left with the source (`InstrumentSource`; waited
for up to 30 s), and it has no breaker to reset.

Errors: a call that cannot be served raises in the calling thread — `RuntimeError` when the
engine is not running (not started, or stopped), `LookupError` for an adapter that is not
installed, `TimeoutError` when the loop did not answer in time. Symbols the exchange refuses
are not an exception: `subscribe` returns them (symbol → why) and subscribes the others.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from typing import Any, Literal, TypeVar

from foxtrot_stream.config.settings import Settings, load
from foxtrot_stream.contract.model import Tick
from foxtrot_stream.contract.plugins import PluginHost
from foxtrot_stream.contract.records import Instrument
from foxtrot_stream.runtime.buffer import HandOff
from foxtrot_stream.runtime.feed import Feed
from foxtrot_stream.runtime.source_feed import SourceFeed
from foxtrot_stream.surfaces.serve import ServeOptions, StatusServer, start_server
from foxtrot_stream.util import eventloop

log = logging.getLogger("foxtrot_stream.integrations.engine")

Policy = Literal["conflate", "drop_oldest"]
POLICIES: tuple[Policy, ...] = ("conflate", "drop_oldest")
LOOP_THREAD = "foxtrot-stream-loop"
DEFAULT_MAXSIZE = 10_000
#: How long a thread-safe call waits for the loop's answer by default (seconds).
CALL_TIMEOUT = 30.0

T = TypeVar("T")


class Consumer:
    """One registered callback: its hand-off queue, its thread and its counters.

    Each feed calls `put` on the loop thread for every tick (no lock unless the consumer is
    behind); the first tick after the thread took its last batch schedules one wake-up for the
    end of the loop iteration, and the thread then takes everything waiting as one batch and
    calls the callback for each tick of it.
    """

    put: Callable[[Tick], None]
    """Hand a tick over (on the loop thread): `HandOff.put`, called by the feeds directly."""

    def __init__(
        self, callback: Callable[[Tick], object], name: str, policy: Policy, maxsize: int
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"policy {policy!r}: expected one of {', '.join(POLICIES)}")
        if maxsize < 1:
            raise ValueError(f"maxsize {maxsize!r}: expected an integer of at least 1")
        self.callback = callback
        self.name = name
        self.policy: Policy = policy
        self.maxsize = maxsize
        self.errors = 0
        self._lock = threading.Lock()
        self._queue = HandOff(maxsize, policy, self._lock, self._schedule_wake)
        self.put = self._queue.put
        self._ready = threading.Event()
        self._idle = False  # the thread found nothing to take and is about to wait, or waits
        self._closing = False
        self.thread = threading.Thread(
            target=self._run, name=f"foxtrot-stream-consumer-{name}", daemon=True
        )

    def _schedule_wake(self) -> None:
        """A tick is waiting and nothing was before it: wake the thread once the loop has
        handed over the rest of this iteration's ticks (one wake-up per batch, not per tick).
        Off the loop (a test putting ticks by hand), at once."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.wake()
        else:
            loop.call_soon(self.wake)

    def wake(self) -> None:
        """Wake the thread if it is waiting for ticks (any thread)."""
        if self._idle:
            self._ready.set()

    def _take(self) -> Iterator[Tick] | None:
        """The next batch, waiting for one; None once closed and empty."""
        queue, ready = self._queue, self._ready
        while True:
            closing = self._closing  # read first: whatever was put before close() is taken
            batch = queue.take()
            if batch is not None:
                return batch
            if closing:
                return None
            ready.clear()
            self._idle = True  # from here a first put is followed by a set() (see `wake`)...
            if not queue and not self._closing:  # ... and one before it is seen here
                ready.wait()
            self._idle = False

    def _run(self) -> None:
        callback = self.callback
        while (batch := self._take()) is not None:
            for tick in batch:  # taken from the batch: delivered (HandOff.delivered)
                try:
                    callback(tick)
                except Exception:
                    self.errors += 1
                    if self.errors == 1:  # once: a failing consumer must not flood the log
                        log.exception("consumer %s raised; it keeps receiving", self.name)

    def close(self) -> None:
        """Deliver what is queued, then end the thread (see `join`). A tick put after this is
        counted as dropped (a stop that timed out: the thread may be gone)."""
        self._queue.close()
        self._closing = True
        self._ready.set()

    def _counts(self) -> tuple[int, int, int]:
        with self._lock:  # batches are taken and ticks dropped under it
            return self._queue.counts()

    @property
    def delivered(self) -> int:
        return self._counts()[0]

    @property
    def dropped(self) -> int:
        return self._counts()[1]

    @property
    def received(self) -> int:
        return sum(self._counts())

    def stats(self) -> dict[str, Any]:
        delivered, dropped, queued = self._counts()
        return {
            "name": self.name,
            "policy": self.policy,
            "maxsize": self.maxsize,
            "queued": queued,
            "received": delivered + dropped + queued,
            "delivered": delivered,
            "dropped": dropped,
            "errors": self.errors,
        }


class StreamEngine:
    """Feeds on a background loop, driven from any thread; see the module docstring.

    Lifecycle: `start()` once, then `subscribe`/`unsubscribe`/`status`/`reset_breaker` from any
    thread, then `stop(timeout)` (idempotent). Every call after `stop()` raises RuntimeError.
    """

    def __init__(self, settings: Settings, host: PluginHost) -> None:
        self.settings = settings
        self.host = host
        self._lock = threading.Lock()
        self._state: Literal["new", "running", "stopping", "stopped"] = "new"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._consumers: tuple[Consumer, ...] = ()
        self._consumer_ids = itertools.count(1)
        self._stopped = threading.Event()
        self._stop_result = True
        # loop-side state: touched only on the loop thread
        self._feeds: dict[str, Feed | SourceFeed] = {}
        self._feed_locks: dict[str, asyncio.Lock] = {}
        self._calls: set[asyncio.Task[Any]] = set()
        self._shutdown: asyncio.Event | None = None
        self._shutdown_timeout = 5.0
        self._server: StatusServer | None = None
        self.leftover_tasks: list[str] = []
        """Names of tasks still alive on the loop after the feeds stopped (should be none)."""

    @classmethod
    def from_settings(
        cls, path: str | os.PathLike[str] | None = None, *, host: PluginHost | None = None
    ) -> StreamEngine:
        """Load the plugins and `vt_setting.json` (`path`, else `$FOXTROT_SETTINGS`, else
        ./vt_setting.json). Raises `SettingsError` naming every bad key, its value and what was
        expected, or `PluginLoadError` when the settings need a plugin that cannot load."""
        host = PluginHost.discover() if host is None else host
        loaded = load(path, host.schema())
        for problem in loaded.problems:
            log.log(logging.INFO if problem.severity == "info" else logging.WARNING, "%s", problem)
        host.check_required(loaded.settings)
        return cls(loaded.settings, host)

    @classmethod
    def from_mapping(
        cls, values: Mapping[str, Any], *, host: PluginHost | None = None
    ) -> StreamEngine:
        """As `from_settings`, from dotted keys already read (a host's own settings dict,
        merged with its connect dialog): the same checks, the same `SettingsError`."""
        host = PluginHost.discover() if host is None else host
        loaded = load(text=json.dumps(dict(values), default=str), schema=host.schema())
        for problem in loaded.problems:
            log.log(logging.INFO if problem.severity == "info" else logging.WARNING, "%s", problem)
        host.check_required(loaded.settings)
        return cls(loaded.settings, host)

    # --- lifecycle (any thread) -------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._state == "running"

    def start(self, timeout: float = 10.0) -> None:
        """Start the loop thread (and the consumer threads). Raises RuntimeError if called
        twice or after `stop()`, `LoopChoiceError` (a ValueError) if `$FOXTROT_STREAM_LOOP`
        names an unknown loop or uvloop while it is not installed.

        The loop is uvloop when it is installed (`foxtrot-stream[fast]`), else asyncio's;
        `FOXTROT_STREAM_LOOP=asyncio` forces asyncio's."""
        with self._lock:
            if self._state != "new":
                raise RuntimeError(f"the stream engine cannot start: it is {self._state}")
            kind = eventloop.choose()  # uvloop when installed; $FOXTROT_STREAM_LOOP overrides
            loop = kind.factory()
            log.info("event loop: %s", kind.name)
            ready = threading.Event()
            thread = threading.Thread(
                target=self._run_loop, args=(loop, ready), name=LOOP_THREAD, daemon=False
            )
            self._loop, self._thread = loop, thread
            self._state = "running"
            for consumer in self._consumers:
                consumer.thread.start()
            thread.start()
        if not ready.wait(timeout):
            raise TimeoutError(f"the stream engine's loop did not start within {timeout}s")

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop every feed, deliver what consumers have queued, end every thread.

        Idempotent; a second call waits for the first. Returns True if everything ended within
        `timeout` seconds (False: a thread is still alive, e.g. a consumer stuck in its
        callback, and a warning says which)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            state = self._state
            if state == "new":
                self._state = "stopped"
                self._stopped.set()
                return True
            if state == "running":
                self._state = "stopping"
        if state != "running":  # another call is stopping (or has stopped) the engine
            self._stopped.wait(max(0.0, deadline - time.monotonic()))
            return self._stop_result and self._stopped.is_set()
        loop, thread = self._loop, self._thread
        assert loop is not None and thread is not None
        self._shutdown_timeout = max(0.1, timeout * 0.8)
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            loop.call_soon_threadsafe(self._request_shutdown)
        if threading.current_thread() is not thread:
            thread.join(max(0.0, deadline - time.monotonic()))
        ok = not thread.is_alive()
        for consumer in self._consumers:
            consumer.close()
        me = threading.current_thread()
        for consumer in self._consumers:
            if consumer.thread is not me and consumer.thread.ident is not None:
                consumer.thread.join(max(0.0, deadline - time.monotonic()))
                ok = ok and not consumer.thread.is_alive()
        alive = [t.name for t in (thread, *(c.thread for c in self._consumers)) if t.is_alive()]
        if alive and me not in (thread, *(c.thread for c in self._consumers)):
            log.warning("stream engine stop: still running after %gs: %s", timeout, alive)
        with self._lock:
            self._state = "stopped"
            self._stop_result = ok
        self._stopped.set()
        return ok

    # --- consumers ----------------------------------------------------------------------------

    def add_consumer(
        self,
        callback: Callable[[Tick], object],
        *,
        name: str | None = None,
        policy: Policy = "conflate",
        maxsize: int = DEFAULT_MAXSIZE,
    ) -> Consumer:
        """Register `callback` for every tick of every adapter; it is called on a thread of its
        own behind a bounded queue (`policy`, `maxsize`: see the module docstring). Allowed
        before or after `start()`."""
        consumer = Consumer(callback, name or f"{next(self._consumer_ids)}", policy, maxsize)
        with self._lock:
            if self._state in ("stopping", "stopped"):
                raise RuntimeError("the stream engine is stopped: no consumer can be added")
            self._consumers = (*self._consumers, consumer)  # the loop reads the tuple lock-free
            if self._state == "running":
                consumer.thread.start()
                assert self._loop is not None
                self._loop.call_soon_threadsafe(self._attach_everywhere)  # the started feeds
        return consumer

    def _attach(self, feed: Feed | SourceFeed) -> None:
        """On the loop: every consumer's `put` is one of `feed`'s consumers (once each)."""
        for consumer in self._consumers:
            if not any(c is consumer.put for c in feed.consumers):
                feed.add_consumer(consumer.put)

    def _attach_everywhere(self) -> None:
        for feed in self._feeds.values():
            self._attach(feed)

    # --- the thread-safe API ------------------------------------------------------------------

    def subscribe(
        self,
        symbols: str | Iterable[str],
        adapter: str | None = None,
        *,
        timeout: float = CALL_TIMEOUT,
    ) -> dict[str, str]:
        """Stream `symbols` from `adapter` (default: the only installed adapter, or else the only
        one the settings configure), starting its feed on first use. Returns the symbols the
        exchange refused (symbol → why); the others are subscribed."""
        name = self._adapter(adapter)
        wanted = [symbols] if isinstance(symbols, str) else list(symbols)
        return self._call(self._subscribe(name, wanted), timeout)

    def unsubscribe(
        self,
        symbols: str | Iterable[str],
        adapter: str | None = None,
        *,
        timeout: float = CALL_TIMEOUT,
    ) -> None:
        """Stop streaming `symbols` from `adapter`; symbols not subscribed are ignored."""
        name = self._adapter(adapter)
        gone = [symbols] if isinstance(symbols, str) else list(symbols)
        self._call(self._unsubscribe(name, gone), timeout)

    def status(self, *, timeout: float = CALL_TIMEOUT) -> dict[str, Any]:
        """Plain JSON-safe data: {"running", "adapters": {name: Feed.status()}, "consumers"}."""
        adapters = self._call(self._feed_status(), timeout)
        return {
            "running": self.running,
            "adapters": adapters,
            "consumers": [c.stats() for c in self._consumers],
        }

    def reset_breaker(self, adapter: str | None = None, *, timeout: float = CALL_TIMEOUT) -> int:
        """Reset every open or exhausted breaker of `adapter` (None: of every started feed);
        returns how many were reset. An operator's action after an outage is over."""
        name = None if adapter is None else self._adapter(adapter)
        return self._call(self._reset(name), timeout)

    def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        timeout: float = CALL_TIMEOUT,
        options: ServeOptions | None = None,
    ) -> tuple[str, str]:
        """Serve `/metrics`, `/status`, `/events` and the status page for this engine's feeds,
        on its loop (as `foxtrot-stream run --serve` does; see docs/operations.md). Returns
        (the page's URL, the control token). Stops with the engine. A port out of range or an
        address that cannot be bound raises `ServeAddressError` (a ValueError) naming it.
        `options`: further Host names, the connection cap and timeouts (`ServeOptions`)."""
        return self._call(self._serve(host, port, options), timeout)

    def instruments(
        self, adapter: str | None = None, *, timeout: float = CALL_TIMEOUT
    ) -> tuple[Instrument, ...]:
        """Every instrument `adapter`'s exchange lists (its feed starts if it has not):
        `TypeError` if the adapter has no `Instruments` capability, `PollError` if the
        exchange did not answer."""
        name = self._adapter(adapter)
        return self._call(self._instruments(name), timeout)

    def submit_subscribe(
        self, symbols: str | Iterable[str], adapter: str | None = None
    ) -> concurrent.futures.Future[dict[str, str]]:
        """`subscribe` without waiting: a future of the refused symbols (for hosts whose
        requests must not block; its callbacks run on the loop thread: keep them short)."""
        name = self._adapter(adapter)
        wanted = [symbols] if isinstance(symbols, str) else list(symbols)
        return self._submit(self._subscribe(name, wanted))

    def submit_instruments(
        self, adapter: str | None = None
    ) -> concurrent.futures.Future[tuple[Instrument, ...]]:
        """`instruments` without waiting (see `submit_subscribe`)."""
        return self._submit(self._instruments(self._adapter(adapter)))

    def _adapter(self, adapter: str | None) -> str:
        installed = sorted(self.host.adapters)
        if adapter is None:
            if len(installed) == 1:
                return installed[0]
            # several installed: the one the settings configure (its keys are set), if only one
            origin = self.settings.origin
            configured = [
                a
                for a in installed
                if any(k.startswith((f"{a}.", f"websocket.{a}.")) for k in origin)
            ]
            if len(configured) == 1:
                return configured[0]
            raise LookupError(
                f"name the adapter: {len(installed)} are installed ({', '.join(installed)}) "
                f"and the settings configure {len(configured)} of them"
            )
        if adapter not in self.host.adapters:
            raise LookupError(
                f"no adapter named {adapter!r} is installed "
                f"(installed: {', '.join(installed) or 'none'})"
            )
        return adapter

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run `coro` on the loop and wait for its result in the calling thread."""
        future = self._submit(coro)
        try:
            return future.result(timeout)
        except concurrent.futures.CancelledError:
            raise RuntimeError("the stream engine stopped before answering") from None
        except concurrent.futures.TimeoutError:
            # not cancelled: a call stopped half way (symbols recorded, not yet placed on a
            # connection) would leave the feed inconsistent; it finishes on the loop
            raise TimeoutError(
                f"the stream engine did not answer within {timeout}s (the call goes on)"
            ) from None

    def _submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run `coro` on the loop; its future (cancelled if the engine stops first)."""
        with self._lock:
            if self._state != "running":
                coro.close()
                raise RuntimeError(f"the stream engine is not running (it is {self._state})")
            if threading.current_thread() is self._thread:
                coro.close()
                raise RuntimeError("a blocking StreamEngine call from its own loop thread")
            assert self._loop is not None
            return asyncio.run_coroutine_threadsafe(self._tracked(coro), self._loop)

    async def _tracked(self, coro: Coroutine[Any, Any, T]) -> T:
        task = asyncio.current_task()
        assert task is not None
        self._calls.add(task)
        try:
            return await coro
        finally:
            self._calls.discard(task)

    # --- on the loop --------------------------------------------------------------------------

    async def _feed(self, adapter: str) -> Feed | SourceFeed:
        feed = self._feeds.get(adapter)
        if feed is None:
            feed = self._new_feed(adapter)
            self._attach(feed)  # each consumer's queue is the feed's own consumer: one call
            await feed.start()
            self._feeds[adapter] = feed
            self._attach(feed)  # and any consumer added while it started
        return feed

    def _new_feed(self, adapter: str) -> Feed | SourceFeed:
        """A feed of the exchange, or, when the settings say ``<key>.consume`` (the Redis
        plugin's ``redis.consume``), one that reads the adapter's ticks from that source."""
        consuming = self.host.consuming_source(self.settings)
        if consuming is None:
            return Feed(self.host, self.settings, adapter)
        spec, own = consuming
        display = self.host.adapters[adapter].display_name
        return SourceFeed(spec, own, self.settings, adapter, display)

    def _lock_of(self, adapter: str) -> asyncio.Lock:
        return self._feed_locks.setdefault(adapter, asyncio.Lock())

    async def _subscribe(self, adapter: str, symbols: list[str]) -> dict[str, str]:
        async with self._lock_of(adapter):  # one change at a time per feed
            feed = await self._feed(adapter)
            return await feed.subscribe(symbols)

    async def _instruments(self, adapter: str) -> tuple[Instrument, ...]:
        async with self._lock_of(adapter):
            feed = await self._feed(adapter)
        return await feed.instruments()

    async def _unsubscribe(self, adapter: str, symbols: list[str]) -> None:
        async with self._lock_of(adapter):
            feed = self._feeds.get(adapter)
            if feed is not None:
                await feed.unsubscribe(symbols)

    async def _serve(
        self, host: str, port: int, options: ServeOptions | None = None
    ) -> tuple[str, str]:
        if self._server is not None:
            raise RuntimeError(f"already serving at {self._server.url}")
        server = await start_server(lambda: list(self._feeds.values()), host, port, options)
        self._server = server
        log.info("status page %s (control token returned to the caller, not logged)", server.url)
        return server.url, server.token

    async def _feed_status(self) -> dict[str, Any]:
        return {name: await feed.status_async() for name, feed in sorted(self._feeds.items())}

    async def _reset(self, adapter: str | None) -> int:
        return sum(feed.reset() for name, feed in self._feeds.items() if adapter in (None, name))

    def _request_shutdown(self) -> None:
        if self._shutdown is not None:
            self._shutdown.set()

    def _run_loop(self, loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main(ready))
        except BaseException:
            log.exception("the stream engine's loop failed")
        finally:
            try:
                rest = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for task in rest:
                    task.cancel()
                if rest:
                    loop.run_until_complete(asyncio.gather(*rest, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    async def _main(self, ready: threading.Event) -> None:
        self._shutdown = asyncio.Event()
        ready.set()
        await self._shutdown.wait()
        calls = list(self._calls)
        for task in calls:  # calls made before stop(): their callers get RuntimeError
            task.cancel()
        for task in calls:
            # a call we just cancelled: its caller hears RuntimeError through its own future,
            # and whatever the task raised on the way out was the caller's to see, not ours
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            await self._server.stop()
        try:
            async with asyncio.timeout(self._shutdown_timeout):
                for name, feed in list(self._feeds.items()):
                    try:
                        await feed.stop()
                    except Exception:
                        log.exception("feed %s failed to stop cleanly", name)
        except TimeoutError:
            log.warning("feeds did not stop within %gs", self._shutdown_timeout)
        for _ in range(3):  # closed transports finish closing their sockets on the next turn
            await asyncio.sleep(0)
        me = asyncio.current_task()
        self.leftover_tasks = sorted(
            t.get_name() for t in asyncio.all_tasks() if t is not me and not t.done()
        )
        if self.leftover_tasks:
            log.warning("tasks still alive after the feeds stopped: %s", self.leftover_tasks)
