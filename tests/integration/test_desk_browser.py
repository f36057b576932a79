"""The desk page in a real browser (Debian's Chromium driven by Playwright): an analyst sees a
held order appear in the live queue, releases it with a comment and sees it leave the queue.
Screenshots are saved in ``test-artifacts/``."""

import shutil
from pathlib import Path

import pytest

from tests import events as ev
from tests.integration.conftest import TOKENS

playwright = pytest.importorskip("playwright.async_api", reason="Playwright is not installed (pip install playwright)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
pytestmark = [pytest.mark.integration, pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)")]


async def test_an_analyst_releases_a_held_order_in_the_browser(client, worker):
    expect = playwright.expect
    await client.onboard(ev.customer("C-WEB1", limit=500.0), ev.customer("C-WEB2", limit=500.0))
    ARTIFACTS.mkdir(exist_ok=True)
    async with playwright.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": 1366, "height": 768})
            await page.goto(f"http://127.0.0.1:{worker.port}/desk/")
            await page.fill("#token", TOKENS["analyst"])
            await page.click("#connect")
            await expect(page.locator("#status")).to_have_text("live", timeout=30_000)

            await client.send(ev.order("C-WEB1", "SO-WEB1", 600.0, days=1))
            row = page.locator('#holds tbody tr[data-order="SO-WEB1"]')
            await expect(row).to_be_visible(timeout=60_000)
            await expect(row).to_contain_text("C-WEB1")
            await expect(row).to_contain_text("600.00 EUR")
            await page.screenshot(path=ARTIFACTS / "desk-hold-in-queue.png", full_page=True)

            await row.locator(".release").click()  # no comment yet: refused on the page
            await expect(page.locator("#status")).to_have_text("a comment is required to release")
            await row.locator(".comment").fill("Bank guarantee received.")
            await client.send(ev.order("C-WEB2", "SO-WEB2", 600.0, days=1))  # the queue refreshes meanwhile
            await expect(page.locator('#holds tbody tr[data-order="SO-WEB2"]')).to_be_visible(timeout=60_000)
            await expect(row.locator(".comment")).to_have_value("Bank guarantee received.")
            await row.locator(".release").click()
            await expect(row).to_have_count(0, timeout=60_000)
            await expect(page.locator('#holds tbody tr[data-order="SO-WEB2"]')).to_be_visible()
            await page.screenshot(path=ARTIFACTS / "desk-after-release.png", full_page=True)
        finally:
            await browser.close()
    snapshot = await client.settled("C-WEB1", events_applied=3)
    assert snapshot["exposure"] == 600.0 and snapshot["open_holds"] == 0
