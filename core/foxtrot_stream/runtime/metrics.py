"""The guide's key metrics: latency, update rate, connection uptime, error rate.

Nothing here runs for every tick:

- Tick counts and the time of the last tick are the `Sequencer`'s own per-symbol state, read
  when someone asks (`counts`): counting costs nothing per tick.
- `FeedMetrics.record(tick)` runs only for ticks that carry an exchange timestamp (Binance:
  trades): one latency sample written into a fixed ring. No lock (one loop owns it), no
  allocation beyond the float the subtraction produces, no logging. The histogram is folded
  from the ring when it wraps and once a second.
- Everything else (update rates, percentiles, errors per minute) is computed when someone asks,
  from counters and from samples that a 1 Hz task takes (`sample`).

Latency is the exchange's event time to local receipt (`received_ts` - `exchange_ts`), raw and
corrected by the estimated offset between the local clock and the exchange's (`ClockOffset`).
Only ticks that carry an exchange timestamp contribute (Binance: trades; REST quotes carry none).
"""

from __future__ import annotations

import bisect
import math
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Sequence

import attrs

from foxtrot_stream.contract.model import Tick

#: Latency samples kept per symbol for percentiles (a power of two: the ring index is masked);
#: p99 over 1,024 samples still rests on ten.
LATENCY_RING = 1024
_MASK = LATENCY_RING - 1
#: Percentiles cover at most this many seconds of samples (and at most `LATENCY_RING` of them).
LATENCY_WINDOW = 60.0
#: Upper bounds, in seconds, of the Prometheus latency histogram buckets (+Inf is implied).
LATENCY_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
#: Update rates are averaged over this many seconds.
RATE_WINDOW = 10.0
#: Errors per minute count the failures of the last this many seconds.
ERROR_WINDOW = 60.0


class SymbolMetrics:
    """One symbol's counters and latency ring; written per tick by `FeedMetrics.record`."""

    __slots__ = (
        "buckets",
        "folded",
        "last_ns",
        "lat",
        "lat_at",
        "lat_n",
        "lat_sum",
        "rate_samples",
        "ticks",
    )

    def __init__(self) -> None:
        self.ticks = 0
        self.last_ns = 0
        # typed rings (8 bytes a sample, no object per sample): 16 KiB a symbol however long
        # it runs, against about 80 KiB for lists of boxed floats and ints once they are full
        self.lat = array("d", bytes(8 * LATENCY_RING))
        """Raw latency in seconds; slot ``n & _MASK`` holds sample ``n``."""
        self.lat_at = array("q", bytes(8 * LATENCY_RING))
        """When each latency sample was received (ns since the epoch)."""
        self.lat_n = 0
        self.folded = 0
        """Samples before this one are counted in `buckets` and `lat_sum`."""
        self.lat_sum = 0.0
        self.buckets: list[int] = [0] * (len(LATENCY_BUCKETS) + 1)
        """Cumulative histogram (Prometheus ``le``) of every folded sample; last is +Inf."""
        self.rate_samples: deque[tuple[float, int]] = deque(maxlen=int(RATE_WINDOW) + 2)

    def fold(self) -> None:
        """Add the samples recorded since the last fold to the histogram. Runs when the ring
        is about to wrap and once a second, so no sample is overwritten before it is counted;
        the per-tick path only writes the ring."""
        n = self.lat_n
        if n == self.folded:
            return
        lat = self.lat
        first = max(self.folded, n - LATENCY_RING)
        a, b = first & _MASK, n & _MASK
        if n - first == LATENCY_RING:
            fresh = sorted(lat[b:] + lat[:b])
        elif a < b:
            fresh = sorted(lat[a:b])
        else:
            fresh = sorted(lat[a:] + lat[:b])
        self.folded = n
        self.lat_sum += sum(fresh)
        buckets = self.buckets
        for k, bound in enumerate(LATENCY_BUCKETS):
            buckets[k] += bisect.bisect_right(fresh, bound)
        buckets[-1] += len(fresh)

    def window(self, now_ns: int, seconds: float = LATENCY_WINDOW) -> list[float]:
        """The latency samples of the last `seconds` (at most `LATENCY_RING`), oldest first.

        Slices and a bisection (receive times only grow), no Python loop per sample: a status
        page refreshing twice a second over hundreds of symbols must not stall the feed."""
        n = self.lat_n
        if n <= LATENCY_RING:
            lat, at = self.lat[:n], self.lat_at[:n]
        else:
            b = n & _MASK
            lat, at = self.lat[b:] + self.lat[:b], self.lat_at[b:] + self.lat_at[:b]
        oldest = now_ns - int(seconds * 1e9)
        if not at or at[0] >= oldest:
            return lat.tolist()
        return lat[bisect.bisect_left(at, oldest) :].tolist()

    def rate(self, now: float, ticks: int | None = None) -> float:
        """Ticks per second over the last `RATE_WINDOW` seconds (0.0 before two samples)."""
        current = self.ticks if ticks is None else ticks
        for t, count in self.rate_samples:
            if now - t <= RATE_WINDOW + 1e-9 and now > t:
                return (current - count) / (now - t)
        return 0.0


class FeedMetrics:
    """Per-adapter metrics; `record` is the per-tick hot path (see the module docstring)."""

    def __init__(
        self,
        counts: Callable[[str], tuple[int, int]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.counts = counts
        """symbol → (ticks delivered, when the last one arrived in ns): `Sequencer.delivered`."""
        self.clock = clock
        self.symbols: dict[str, SymbolMetrics] = {}
        self.errors: deque[tuple[float, str]] = deque(maxlen=10_000)
        self.clock_offset = ClockOffset()

    def symbol(self, symbol: str) -> SymbolMetrics:
        """`symbol`'s metrics, with `ticks` and `last_ns` brought up to date."""
        metrics = self.symbols.get(symbol)
        ticks, metrics_last = self.counts(symbol)
        if metrics is None:
            metrics = self.symbols[symbol] = SymbolMetrics()
            metrics.rate_samples.append((self.clock(), ticks))  # its rate counts from here
        metrics.ticks, metrics.last_ns = ticks, metrics_last
        return metrics

    def record(self, tick: Tick) -> None:
        """One latency sample from a delivered tick that carries an exchange timestamp (the
        caller checks `exchange_ts is not None`); keep it to attribute writes."""
        m = self.symbols.get(tick.symbol)
        if m is None:
            m = self.symbol(tick.symbol)
        received = tick.received_ts
        n = m.lat_n
        m.lat_n = n + 1
        i = n & _MASK
        # in integer ns, then to seconds: two epoch-sized floats differ only to about 0.24 µs,
        # enough to put an exact 5 ms into the 10 ms bucket
        m.lat[i] = (received - tick.exchange_ts * 1_000_000) * 1e-9  # type: ignore[operator]
        m.lat_at[i] = received
        if i == _MASK:
            m.fold()

    def forget(self, symbol: str) -> None:
        self.symbols.pop(symbol, None)

    def error(self, kind: str) -> None:
        self.errors.append((self.clock(), kind))

    def errors_per_minute(self) -> dict[str, int]:
        """Failures of the last `ERROR_WINDOW` seconds by kind."""
        oldest = self.clock() - ERROR_WINDOW
        counts: dict[str, int] = {}
        for at, kind in reversed(self.errors):
            if at < oldest:
                break
            counts[kind] = counts.get(kind, 0) + 1
        return counts

    def sample(self, symbols: Iterable[str]) -> None:
        """Remember each symbol's tick count with the time (called about once a second)."""
        now = self.clock()
        for symbol in symbols:
            m = self.symbol(symbol)
            m.rate_samples.append((now, m.ticks))
            m.fold()

    def rate(self) -> float:
        """The sum of the symbols' rates (so the adapter's figure matches theirs)."""
        now = self.clock()
        return sum(self.symbol(s).rate(now) for s in list(self.symbols))


# --- latency percentiles -----------------------------------------------------------------------


@attrs.frozen
class LatencyStats:
    """Percentiles of latency over the sliding window, in milliseconds (None: no samples)."""

    samples: int = 0
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None
    mean: float | None = None


#: Percentiles pooled over many symbols (per connection, per adapter) rest on at most this many
#: samples, taken at an even stride, so building a status stays cheap with thousands of symbols.
POOL_SAMPLES = 4096


def latency_stats(samples: Sequence[float], shift: float = 0.0) -> LatencyStats:
    """Nearest-rank percentiles of `samples` (seconds) + `shift` seconds, in ms."""
    return _stats(sorted(samples), shift)


def latency_pair(
    samples: Sequence[float], offset: float | None
) -> tuple[LatencyStats, LatencyStats | None]:
    """Raw stats, and stats corrected by `offset` (None: no estimate), from one sort."""
    ordered = sorted(samples)
    return _stats(ordered, 0.0), _stats(ordered, offset) if offset is not None else None


def pool(windows: Iterable[list[float]]) -> list[float]:
    """Several symbols' samples together, thinned to about `POOL_SAMPLES` at an even stride
    (so a busy symbol keeps its weight) before they are copied together."""
    parts = list(windows)
    step = max(1, math.ceil(sum(map(len, parts)) / POOL_SAMPLES))
    pooled: list[float] = []
    for part in parts:
        pooled += part[::step] if step > 1 else part
    return pooled


def _stats(ordered: list[float], shift: float) -> LatencyStats:
    if not ordered:
        return LatencyStats()
    n = len(ordered)

    def rank(q: float) -> float:
        return round((ordered[min(n - 1, max(0, math.ceil(q * n) - 1))] + shift) * 1e3, 3)

    return LatencyStats(
        samples=n,
        p50=rank(0.50),
        p95=rank(0.95),
        p99=rank(0.99),
        max=round((ordered[-1] + shift) * 1e3, 3),
        mean=round((sum(ordered) / n + shift) * 1e3, 3),
    )


# --- clock offset --------------------------------------------------------------------------------


@attrs.frozen
class OffsetSample:
    """One round trip to the exchange's time endpoint (local wall-clock seconds, exchange ms)."""

    sent: float
    server_ms: int
    received: float

    @property
    def rtt(self) -> float:
        return self.received - self.sent

    @property
    def offset(self) -> float:
        """Exchange clock minus local clock, in seconds, assuming a symmetric path."""
        return self.server_ms / 1e3 - (self.sent + self.received) / 2


class ClockOffset:
    """Offset between the local clock and the exchange's, from the fastest recent round trips.

    Each sample's offset is exact to within half its round trip (the server read its clock
    somewhere between send and receive), so the sample with the shortest round trip among the
    last `keep` bounds the offset most tightly: its offset is the estimate and half its round
    trip the uncertainty. A sample whose round trip is below its own timestamp resolution
    (1 ms on the exchange side) still gets 0.5 ms of uncertainty.
    """

    def __init__(self, keep: int = 16) -> None:
        self.samples: deque[OffsetSample] = deque(maxlen=keep)
        self.total = 0
        self.last_sync: float | None = None
        """Local wall-clock time of the last sample."""

    def add(self, sent: float, server_ms: int, received: float) -> None:
        if received < sent:
            return  # the local clock stepped back mid-request: the sample means nothing
        self.samples.append(OffsetSample(sent, server_ms, received))
        self.total += 1
        self.last_sync = received

    def best(self) -> OffsetSample | None:
        return min(self.samples, key=lambda s: s.rtt, default=None)

    @property
    def offset(self) -> float | None:
        """Exchange minus local, seconds; add it to a raw latency to correct it."""
        best = self.best()
        return best.offset if best is not None else None

    @property
    def uncertainty(self) -> float | None:
        best = self.best()
        return max(best.rtt / 2, 0.0005) if best is not None else None
