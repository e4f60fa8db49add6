from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from foxtrot_stream_binance.simulator import Simulator

from simwire import config

MakeSim = Callable[..., Awaitable[Simulator]]


@pytest.fixture
async def make_sim() -> AsyncIterator[MakeSim]:
    """Start simulators with the fast timings (overridable); stop them and check for leaks."""
    sims: list[Simulator] = []

    async def make(**overrides: Any) -> Simulator:
        sim = await Simulator(config(**overrides)).start()
        sims.append(sim)
        return sim

    yield make
    for sim in sims:
        await sim.stop()
    leaked = [t for t in asyncio.all_tasks() if t.get_name().startswith("simulator-")]
    assert not leaked, f"leaked simulator tasks: {leaked}"


@pytest.fixture
async def sim(make_sim: MakeSim) -> Simulator:
    return await make_sim()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
