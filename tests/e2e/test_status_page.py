"""The status page in a real headless Chromium (Debian `chromium`, driven by Playwright).

It loads, shows every symbol, switches the transport cell from websocket to http during a
simulated outage (a screenshot of that moment is saved under a temp dir), and its reset control
brings an exhausted adapter back onto the WebSocket.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright import async_api as playwright_api

from foxtrot_stream.contract.plugins import PluginHost
from foxtrot_stream.runtime.feed import Feed
from foxtrot_stream.surfaces.serve import StatusServer
from foxtrot_stream_binance.simulator import Simulator

from e2e_helpers import SYMBOLS, proven, settings_for, wait_for


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


async def test_the_page_makes_stale_unserved_gaps_and_a_lost_server_obvious(
    host: PluginHost, sim: Simulator, make_feed: Any, browser_page: Any, tmp_path: Path
) -> None:
    """A stale symbol, unserved symbols, a gap in the latency chart and the server going away,
    each shown by colour and by words; screenshots of each under a temp dir."""
    feed: Feed
    feed, _ = await make_feed(settings_for(host, sim))
    server = StatusServer(lambda: [feed], "127.0.0.1", 0)
    await server.start()
    page = browser_page
    csp_errors: list[str] = []
    page.on(
        "console", lambda m: csp_errors.append(m.text) if "Content Security" in m.text else None
    )

    async def shot(name: str) -> None:
        path = tmp_path / f"status-page-{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 10_000
        print(f"screenshot: {path}")

    async def condition(symbol: str) -> tuple[str, str]:
        row = page.locator(f'tr[data-symbol="{symbol}"]')
        text: str = await row.locator('[data-field="condition"]').inner_text()
        background: str = await row.locator("td").first.evaluate(
            "td => getComputedStyle(td).backgroundColor"
        )
        return text, background

    try:
        await page.goto(server.url + "#unserved-after=1")
        await wait_for(proven(feed), 5, "streaming")
        await page.wait_for_function(
            """() => [...document.querySelectorAll('[data-field="condition"]')]
                   .filter(td => td.textContent === 'ok').length === 3""",
            timeout=5000,
        )
        ok_text, ok_background = await condition("BTCUSDT")
        assert ok_text == "ok"

        sim.silence(3.0, symbols=["ETHUSDT"])  # the WebSocket loses ETHUSDT, REST shows it moving
        await page.wait_for_function(
            """() => document.querySelector('tr[data-symbol="ETHUSDT"] [data-field="condition"]')
                   .textContent.startsWith('STALE')""",
            timeout=5000,
        )
        stale_text, stale_background = await condition("ETHUSDT")
        assert "polled over HTTP" in stale_text and stale_background != ok_background
        assert (await condition("BTCUSDT"))[0] == "ok"
        await shot("stale")

        sim.outage(60)  # and REST fails too: nothing serves any symbol
        sim.rest_errors(500, 100_000)
        await page.wait_for_function(
            """() => [...document.querySelectorAll('[data-field="condition"]')]
                   .filter(td => td.textContent.startsWith('UNSERVED: no update for'))
                   .length === 3""",
            timeout=5000,
        )
        _, unserved_background = await condition("BTCUSDT")
        assert unserved_background not in (ok_background, stale_background)
        await shot("unserved")

        sim.clear()
        feed.reset()
        await wait_for(proven(feed), 8, "streaming again")
        await page.wait_for_function(
            """() => document.querySelector('tr[data-symbol="BTCUSDT"] [data-field="condition"]')
                   .textContent === 'ok'""",
            timeout=5000,
        )
        await asyncio.sleep(1.2)  # a few points after the gap
        path = await page.locator('svg.latency-chart path[data-symbol="BTCUSDT"]').get_attribute(
            "d"
        )
        assert path.count("M") >= 2, path  # the outage is a gap, not a line across it
        await shot("gap")

        await server.stop()  # the page loses its server
        await page.wait_for_function(
            "() => document.getElementById('connection').textContent.startsWith('DISCONNECTED')",
            timeout=5000,
        )
        assert (
            await page.locator('[data-field="state"]').first.inner_text()
            == "unknown (disconnected)"
        )
        banner = await page.locator("#connection").evaluate(
            "b => [getComputedStyle(b).backgroundColor, getComputedStyle(b).fontSize]"
        )
        assert banner[0] == "rgb(179, 38, 30)" and float(banner[1].rstrip("px")) > 14
        await shot("disconnected")
        assert csp_errors == []
    finally:
        await server.stop()


async def test_the_page_signs_in_with_the_token_and_keeps_no_copy(
    host: PluginHost, sim: Simulator, make_feed: Any, browser_page: Any
) -> None:
    """Where controls need the token, the button asks for it, sends it in the body of
    POST /login and the HttpOnly cookie carries it: never the URL, never page script."""
    feed: Feed
    feed, _ = await make_feed(settings_for(host, sim))
    server = StatusServer(lambda: [feed], "127.0.0.1", 0)
    await server.start()
    server.loopback = False  # as if bound to 0.0.0.0: loopback callers need the token too
    page = browser_page
    answers = iter(["wrong", server.token])
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept(next(answers))))
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    try:
        await page.goto(server.url)
        await page.wait_for_selector('button[data-reset="binance"]', timeout=5000)
        await page.click('button[data-reset="binance"]')
        await page.wait_for_function(
            "() => document.getElementById('message').textContent.includes('wrong token')",
            timeout=5000,
        )
        await page.click('button[data-reset="binance"]')
        await page.wait_for_function(
            "() => document.getElementById('message').textContent.includes('breaker(s) reset')",
            timeout=5000,
        )
        assert await page.evaluate("document.cookie") == ""  # HttpOnly: no script reads it
        cookies = await page.context.cookies()
        assert [(c["name"], c["httpOnly"], c["sameSite"]) for c in cookies] == [
            ("foxtrot_token", True, "Strict")
        ]
        assert not any(server.token in url for url in requested)
    finally:
        await server.stop()
