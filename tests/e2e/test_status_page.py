"""The status page in a real headless Chromium (Debian `chromium`, driven by Playwright).

It loads, shows every symbol, switches the transport cell from websocket to http during a
simulated outage (a screenshot of that moment is saved under a temp dir), and its reset control
brings an exhausted adapter back onto the WebSocket.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright import async_api as playwright_api

from foxtrot_stream.feed import Feed
from foxtrot_stream.plugins import PluginHost
from foxtrot_stream.serve import StatusServer
from foxtrot_stream_binance.simulator import Simulator

from e2e_helpers import SYMBOLS, settings_for, wait_for


def chromium_path() -> str:
    path = os.environ.get("FOXTROT_CHROMIUM") or shutil.which("chromium")
    if path is None:
        message = "no Chromium: `apt-get install chromium` or set FOXTROT_CHROMIUM (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs it: missing there is a broken CI, not a skip
        # A developer's machine may lack the browser (a system package, not a PyPI one); every
        # other test still runs, and the reason is shown in pytest's summary.
        pytest.skip(message)
    return path


@pytest.fixture
async def browser_page() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=chromium_path(), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = await browser.new_page(viewport={"width": 1100, "height": 900})
            yield page
        finally:
            await browser.close()


async def cell(page: Any, symbol: str, field: str) -> str:
    locator = page.locator(f'tr[data-symbol="{symbol}"] [data-field="{field}"]')
    text: str = await locator.inner_text()
    return text


async def test_the_page_shows_the_failover_and_its_reset_control_works(
    host: PluginHost, sim: Simulator, make_feed: Any, browser_page: Any, tmp_path: Path
) -> None:
    settings = settings_for(host, sim, websocket__reconnect__max_attempts=4)
    feed: Feed
    feed, _ = await make_feed(settings)
    server = StatusServer(lambda: [feed], "127.0.0.1", 0)
    await server.start()
    page = browser_page
    try:
        await page.goto(server.url)
        for symbol in SYMBOLS:
            await page.wait_for_selector(f'tr[data-symbol="{symbol}"]', timeout=5000)
        await page.wait_for_function(
            """() => [...document.querySelectorAll('[data-field="transport"]')]
                   .every(td => td.textContent === 'websocket')""",
            timeout=5000,
        )
        assert await page.title() == "foxtrot-stream status"
        assert await page.locator("svg.latency-chart").count() == 1

        sim.outage(60)  # the WebSocket fails until cleared; REST keeps answering
        await page.wait_for_function(
            """() => document.querySelector('tr[data-symbol="BTCUSDT"] [data-field="transport"]')
                   .textContent === 'http'""",
            timeout=8000,
        )
        shot = tmp_path / "status-page-during-outage.png"
        await page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000 and shot.read_bytes()[:4] == b"\x89PNG"
        print(f"screenshot: {shot}")

        # four failed attempts in a row: the adapter gives up and stays on HTTP until reset
        await page.wait_for_function(
            """() => document.querySelector('[data-field="state"]').textContent === 'exhausted'""",
            timeout=8000,
        )
        assert await cell(page, "ETHUSDT", "breaker") == "EXHAUSTED"
        assert await cell(page, "ETHUSDT", "transport") == "http"

        sim.clear()  # the exchange is back, but an exhausted adapter waits for an operator
        await page.click('button[data-reset="binance"]')
        await page.wait_for_function(
            """() => document.getElementById('message').textContent
                   .includes('1 breaker(s) reset')""",
            timeout=5000,
        )
        await page.wait_for_function(
            """() => [...document.querySelectorAll('[data-field="transport"]')]
                   .every(td => td.textContent === 'websocket')""",
            timeout=8000,
        )
        assert await cell(page, "BTCUSDT", "breaker") == "CLOSED"
        await wait_for(lambda: feed.status()["state"] == "streaming", 3, "streaming")
    finally:
        await server.stop()
