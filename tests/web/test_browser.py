"""The pages driven in headless Chromium: search, open, subscribe, confirm, unsubscribe."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.web.conftest import Web
from tests.web.test_pages import KHMER, link


async def test_search_and_open_a_recommendation(served_web: Web, browser: Any) -> None:
    await served_web.stack.import_demo()
    page = await browser.new_page()
    await page.goto(served_web.url + "/")
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent") == "Skip to content"
    await page.get_by_label("Search the text").fill("torture")
    await page.get_by_label("Response").select_option("supported")
    await page.get_by_role("button", name="Search").click()
    await page.wait_for_url(re.compile(r"q=torture"))
    results = page.locator("ol.results > li h2 a")
    count = await results.count()
    assert count >= 1
    assert "response=supported" in page.url
    first = await results.first.text_content()
    await results.first.click()
    await page.wait_for_url(re.compile(r"/recommendations/KHM-"))
    heading = await page.locator("h1").text_content()
    assert heading == f"Recommendation {first.strip()}"
    assert "tortur" in (await page.locator("blockquote").text_content()).lower()
    assert await page.locator("#h-status").is_visible()
    badge = page.locator('img[alt="Status badge of this recommendation"]')
    assert await badge.evaluate("img => img.complete && img.naturalWidth > 0")


async def test_subscribe_confirm_and_unsubscribe(served_web: Web, browser: Any) -> None:
    stack = served_web.stack
    await stack.import_demo()
    page = await browser.new_page()
    await page.goto(served_web.url + "/recommendations/KHM-2-118.17")
    await page.get_by_role("link", name="Get alerts by e-mail or SMS").click()
    await page.wait_for_url(re.compile(r"/subscribe\?recommendation_id=KHM-2-118.17"))
    assert await page.get_by_label("Recommendation ids (optional)").input_value() == (
        "KHM-2-118.17"
    )
    unlabelled = await page.evaluate(
        """[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
           .filter(e => e.labels.length === 0).map(e => e.name)"""
    )
    assert unlabelled == []
    await page.locator("summary", has_text="Issues").click()
    await page.get_by_label("Torture and other CID treatment", exact=True).check()
    await page.get_by_label("E-mail address").fill("ngo@example.org")
    await page.get_by_label("How often").select_option("daily")
    await page.get_by_role("button", name="Subscribe").click()
    await page.get_by_role("heading", name="Check your messages").wait_for()

    await stack.until(lambda: len(stack.smtp.messages_to("ngo@example.org")) == 1)
    [mail] = stack.smtp.messages_to("ngo@example.org")
    confirm_url = link(mail, "/v1/confirm")
    assert confirm_url.startswith(served_web.url)
    await page.goto(confirm_url)
    await page.get_by_role("button", name="Confirm my subscription").click()
    await page.get_by_role("heading", name="Subscription confirmed").wait_for()
    [subscription] = (
        await stack.notifications.get("/v1/subscriptions", headers=stack.admin)
    ).json()
    assert subscription["confirmed"] and subscription["active"]
    assert subscription["filters"]["issues"] == ["Torture and other CID treatment"]
    assert subscription["filters"]["recommendation_ids"] == ["KHM-2-118.17"]

    await page.goto(link(mail, "/v1/unsubscribe"))
    await page.get_by_role("button", name="Stop all alerts").click()
    await page.get_by_role("heading", name="You are unsubscribed").wait_for()
    [subscription] = (
        await stack.notifications.get("/v1/subscriptions", headers=stack.admin)
    ).json()
    assert subscription["active"] is False


async def test_dashboard_screenshot_and_khmer(
    served_web: Web, browser: Any, artifacts: Path
) -> None:
    stack = served_web.stack
    await stack.import_demo()
    ngo = await stack.monitoring_key("LICADHO")
    for rec, status in (("KHM-2-118.17", "fully_implemented"), ("KHM-2-118.18", "in_progress")):
        await stack.assess(ngo, rec, status)
    page = await browser.new_page(viewport={"width": 1100, "height": 900})
    await page.goto(served_web.url + "/dashboard")
    assert await page.locator("svg.chart").count() >= 3
    shot = artifacts / "dashboard-en.png"
    await page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes().startswith(b"\x89PNG")
    await page.goto(served_web.url + "/dashboard?lang=km")
    assert await page.locator("html").get_attribute("lang") == "km"
    heading = await page.locator("h1").text_content()
    assert KHMER.search(heading), heading
    font = await page.locator("h1").evaluate("e => getComputedStyle(e).fontFamily")
    assert "Noto Sans Khmer" in font
    shot_km = artifacts / "dashboard-km.png"
    await page.screenshot(path=str(shot_km), full_page=True)
    # The language sticks: the next page without ?lang= is still in Khmer.
    await page.get_by_role("link", name="អនុសាសន៍").first.click()
    assert await page.locator("html").get_attribute("lang") == "km"
    print(f"dashboard screenshots: {shot} {shot_km}")
