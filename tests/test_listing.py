"""`Listing`: one request for everyone who needs the exchange's list, kept `ttl` seconds."""

from __future__ import annotations

import asyncio

import pytest

from foxtrot_stream import Listing, PollError


async def settle() -> None:
    """Let every task that can run, run (a few turns of the loop, no time)."""
    for _ in range(5):
        await asyncio.sleep(0)


class Exchange:
    """Answers `fetch` when the test says so: requests counted, each answer released by hand."""

    def __init__(self) -> None:
        self.requests = 0
        self.answers: asyncio.Queue[object] = asyncio.Queue()

    async def fetch(self) -> list[str]:
        self.requests += 1
        answer = await self.answers.get()
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, list)
        return answer


async def test_callers_share_one_request_and_the_value_is_kept_for_ttl() -> None:
    now = [100.0]
    listing: Listing[list[str]] = Listing(60.0, clock=lambda: now[0])
    exchange = Exchange()
    callers = [asyncio.create_task(listing.get(exchange.fetch)) for _ in range(3)]
    await settle()
    assert exchange.requests == 1
    exchange.answers.put_nowait(["BTCUSDT"])
    assert await asyncio.gather(*callers) == [["BTCUSDT"]] * 3
    assert (listing.value, listing.fetched_at) == (["BTCUSDT"], 100.0)
    now[0] = 159.9
    assert await listing.get(exchange.fetch) == ["BTCUSDT"] and exchange.requests == 1
    now[0] = 160.0  # ttl over: asked again
    exchange.answers.put_nowait(["BTCUSDT", "ETHUSDT"])
    assert await listing.get(exchange.fetch) == ["BTCUSDT", "ETHUSDT"]
    exchange.answers.put_nowait(["ETHUSDT"])
    assert await listing.get(exchange.fetch, refresh=True) == ["ETHUSDT"]  # fresh, yet asked
    assert exchange.requests == 3


async def test_a_cancelled_caller_leaves_the_request_to_the_others() -> None:
    listing: Listing[list[str]] = Listing(60.0)
    exchange = Exchange()
    first = asyncio.create_task(listing.get(exchange.fetch))
    second = asyncio.create_task(listing.get(exchange.fetch))
    await settle()
    first.cancel()
    exchange.answers.put_nowait(["BTCUSDT"])
    assert await second == ["BTCUSDT"]
    with pytest.raises(asyncio.CancelledError):
        await first
    # all callers gone: the answer is still kept
    alone = asyncio.create_task(listing.get(exchange.fetch, refresh=True))
    await settle()
    alone.cancel()
    exchange.answers.put_nowait(["ETHUSDT"])
    await settle()
    assert listing.value == ["ETHUSDT"] and exchange.requests == 2


async def test_a_failure_fails_its_callers_is_not_kept_and_the_next_get_asks_again() -> None:
    listing: Listing[list[str]] = Listing(60.0)
    exchange = Exchange()
    callers = [asyncio.create_task(listing.get(exchange.fetch)) for _ in range(2)]
    await settle()
    exchange.answers.put_nowait(PollError("exchangeInfo answered HTTP 503"))
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert [str(r) for r in results] == ["exchangeInfo answered HTTP 503"] * 2
    assert listing.value is None
    exchange.answers.put_nowait(["BTCUSDT"])
    assert await listing.get(exchange.fetch) == ["BTCUSDT"] and exchange.requests == 2


def test_ttl_must_be_positive() -> None:
    for ttl in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="ttl must be > 0"):
            Listing(ttl)
