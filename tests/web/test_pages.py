"""The public pages over real catalog, monitoring and notifications services."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from email.message import EmailMessage
from xml.etree import ElementTree as ET

import httpx
import icalendar
import pytest

from services.web.app import create_app
from services.web.settings import WebSettings
from tests.web.conftest import Web, free_port

ATOM = "{http://www.w3.org/2005/Atom}"
SVG = "{http://www.w3.org/2000/svg}"
PAGE_BUDGET = 100 * 1024
KHMER = re.compile(r"[\u1780-\u17FF]")


def body_of(message: EmailMessage) -> str:
    parts = [message] if not message.is_multipart() else list(message.walk())
    return "\n".join(
        p.get_content() for p in parts if p.get_content_type() in {"text/plain", "text/html"}
    )


def link(message: EmailMessage, path: str) -> str:
    """The first link to path in the message (with its token)."""
    found = re.search(rf"https?://[^\s\"'<>]+{re.escape(path)}\?token=[\w.\-]+", body_of(message))
    assert found, body_of(message)
    return found.group(0)


async def test_search_filters_and_pages(web: Web) -> None:
    await web.stack.import_demo()
    first = await web.client.get("/", params={"response": "noted"})
    assert first.status_code == 200
    assert "Showing 20 of 42 recommendations" in first.text
    assert first.text.count('class="pill response-noted"') == 20
    assert 'lang="en"' in first.text
    assert len(first.content) < PAGE_BUDGET
    next_url = re.search(r'href="([^"]+)" rel="next"', first.text).group(1).replace("&amp;", "&")
    second = await web.client.get(next_url)
    ids = re.compile(r'<h2><a href="/recommendations/([^"]+)"')
    assert second.status_code == 200
    assert not set(ids.findall(first.text)) & set(ids.findall(second.text))
    searched = await web.client.get("/recommendations", params={"q": "torture"})
    assert searched.status_code == 200
    texts = re.findall(r"</h2>\s*<p>(.*?)</p>", searched.text, re.S)
    assert len(texts) == len(ids.findall(searched.text)) >= 3
    assert all("tortur" in text.lower() for text in texts)
    bad = await web.client.get("/recommendations", params={"issue": "No such issue"})
    assert bad.status_code == 422
    assert "One of the filters is not valid" in bad.text
    assert "Traceback" not in bad.text


async def test_a_recommendation_side_by_side_with_public_evidence_only(web: Web) -> None:
    stack = web.stack
    await stack.import_demo()
    rec = "KHM-2-118.17"
    ngo = await stack.monitoring_key("LICADHO")
    government = await stack.monitoring_key("Ministry of Information")
    for title, visibility in (("Public NGO report", "public"), ("Witness notes", "restricted")):
        response = await stack.monitoring.post(
            f"/v1/recommendations/{rec}/evidence",
            json={"kind": "ngo_report", "title": title, "visibility": visibility},
            headers=ngo,
        )
        assert response.status_code == 201, response.text
    await stack.assess(ngo, rec, "not_started")
    await stack.assess(government, rec, "in_progress", assessor_type="government")
    page = await web.client.get(f"/recommendations/{rec}")
    assert page.status_code == 200, page.text
    assert "Recommendation 118.17" in page.text
    assert "Civil society (NGO)" in page.text and "Government" in page.text
    assert "Not started" in page.text and "In progress" in page.text
    assert "Assessors disagree" in page.text
    assert "Public NGO report" in page.text
    assert "Witness notes" not in page.text
    assert "Response history" in page.text
    assert page.text.count('<li><time datetime="') >= 3  # two assessments and the evidence
    assert len(page.content) < PAGE_BUDGET
    missing = await web.client.get("/recommendations/KHM-2-999.99")
    assert missing.status_code == 404
    assert "Page not found" in missing.text


async def test_dashboard_draws_four_svg_charts(web: Web) -> None:
    stack = web.stack
    await stack.import_demo()
    response = await stack.catalog.put(
        "/v1/recommendations/KHM-2-118.17/responsible-bodies",
        json={"responsible_bodies": [{"name": "Ministry of Information", "role": "lead"}]},
        headers=stack.admin,
    )
    assert response.status_code == 200, response.text
    ngo = await stack.monitoring_key("LICADHO")
    await stack.assess(ngo, "KHM-2-118.17", "fully_implemented")
    async with asyncio.timeout(15):
        while not (
            await stack.monitoring.get("/v1/stats", params={"group_by": "responsible_body"})
        ).json()["groups"]:
            await asyncio.sleep(0.1)
    page = await web.client.get("/dashboard", params={"state_under_review": "KHM"})
    assert page.status_code == 200, page.text
    assert len(page.content) < PAGE_BUDGET
    charts = re.findall(
        r'<svg xmlns="http://www.w3.org/2000/svg" viewBox.*?</svg>', page.text, re.S
    )
    assert len(charts) == 4
    for chart in charts:
        root = ET.fromstring(chart)
        assert root.get("role") == "img"
        assert root.find(f"{SVG}title").text
        assert root.findall(f"{SVG}rect")
    assert "Ministry of Information" in page.text
    for title in ("Accepted versus noted", "By issue", "By recommending State"):
        assert title in page.text
    assert "205 recommendations; 1 triggered action" in page.text
    assert "Fully implemented" in page.text


async def test_khmer_pages(web: Web) -> None:
    await web.stack.import_demo()
    for path in ("/", "/dashboard", "/subscribe", "/recommendations/KHM-2-118.17"):
        page = await web.client.get(path, params={"lang": "km"})
        assert page.status_code == 200, page.text
        assert '<html lang="km"' in page.text
        assert len(KHMER.findall(page.text)) > 50
        assert len(page.content) < PAGE_BUDGET
    assert web.client.cookies.get("lang") == "km"  # ?lang= is remembered
    # Countries are named in Khmer on Khmer pages (118.17: Cambodia, recommended by Belgium).
    detail = await web.client.get("/recommendations/KHM-2-118.17", params={"lang": "km"})
    assert "កម្ពុជា" in detail.text and "បែល\u200bហ្ស៊ិក" in detail.text
    assert "Cambodia" not in detail.text and "Belgium" not in detail.text
    # Dates are written the Khmer way (the response of the review, 2014-01-28).
    assert '<time datetime="2014-01-28">28 មករា 2014</time>' in detail.text
    english = await web.client.get("/recommendations/KHM-2-118.17", params={"lang": "en"})
    assert '<time datetime="2014-01-28">28 January 2014</time>' in english.text
    await web.client.get("/", params={"lang": "km"})  # back to Khmer for what follows
    listing = await web.client.get("/recommendations", params={"lang": "km", "q": "information"})
    assert "បែល\u200bហ្ស៊ិក" in listing.text and ">Belgium<" not in listing.text
    by_cookie = await web.client.get("/dashboard")  # the client sends the cookie back
    assert '<html lang="km"' in by_cookie.text
    by_header = await httpx_get(web, "/subscribe", {"Accept-Language": "fr;q=0.9, km;q=0.8"})
    assert '<html lang="km"' in by_header.text
    english = await httpx_get(web, "/subscribe", {"Accept-Language": "en-GB,km;q=0.5"})
    assert '<html lang="en"' in english.text
    assert "Belgium" in english.text and "បែល\u200bហ្ស៊ិក" not in english.text
    assert english.headers["vary"] == "Accept-Language, Cookie"


async def httpx_get(web: Web, path: str, headers: dict[str, str]) -> httpx.Response:
    """A GET without the client's cookies."""
    web.client.cookies.clear()
    return await web.client.get(path, headers=headers)


async def test_atom_feed_of_changes(web: Web) -> None:
    stack = web.stack
    await stack.import_demo()
    await asyncio.sleep(0.01)
    response = await stack.catalog.post(
        "/v1/recommendations/KHM-2-118.1/responses",
        json={"position": "noted", "source": "A/HRC/99/1", "date": "2026-01-10"},
        headers=stack.admin,
    )
    assert response.status_code == 201, response.text
    feed = await web.client.get("/feeds/changes.atom", params={"state_under_review": "KHM"})
    assert feed.status_code == 200
    assert feed.headers["content-type"].startswith("application/atom+xml")
    assert feed.headers["access-control-allow-origin"] == "*"
    root = ET.fromstring(feed.content)
    assert root.tag == f"{ATOM}feed"
    entries = root.findall(f"{ATOM}entry")
    assert len(entries) == 20
    assert entries[0].find(f"{ATOM}link").get("href") == (
        "http://web.test/recommendations/KHM-2-118.1"
    )
    updated = [e.find(f"{ATOM}updated").text for e in entries]
    assert updated == sorted(updated, reverse=True)
    assert root.find(f"{ATOM}updated").text == updated[0]
    noted = await web.client.get("/feeds/changes.atom", params={"response": "noted"})
    noted_entries = ET.fromstring(noted.content).findall(f"{ATOM}entry")
    assert len(noted_entries) == 20
    assert all(e.find(f"{ATOM}title").text.endswith("(noted)") for e in noted_entries)
    bad = await web.client.get("/feeds/changes.atom", params={"cycle": "x"})
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("text/plain")


async def test_icalendar_feed_of_deadlines(web: Web) -> None:
    stack = web.stack
    await stack.import_demo()
    due = dt.date.today() + dt.timedelta(days=40)
    for title, body in (
        ("Report on access to information", "Ministry of Information"),
        ("Report on prisons", "Ministry of Interior"),
    ):
        response = await stack.monitoring.post(
            "/v1/deadlines",
            json={"title": title, "recommendation_id": "KHM-2-118.17", "responsible_body": body,
                  "due_on": due.isoformat()},
            headers=stack.admin,
        )  # fmt: skip
        assert response.status_code == 201, response.text
    feed = await web.client.get(
        "/feeds/deadlines.ics", params={"responsible_body": "Ministry of Information"}
    )
    assert feed.status_code == 200, feed.text
    assert feed.headers["content-type"].startswith("text/calendar")
    calendar = icalendar.Calendar.from_ical(feed.content)
    events = calendar.walk("VEVENT")
    assert len(events) == 1
    [event] = events
    assert str(event["summary"]) == "Report on access to information"
    assert event.decoded("dtstart") == due
    assert str(event["url"]) == "http://web.test/recommendations/KHM-2-118.17"
    assert event["uid"].endswith("@upr-tracker")
    review = await web.client.get(
        "/feeds/deadlines.ics", params={"state_under_review": "khm", "cycle": 2}
    )
    assert len(icalendar.Calendar.from_ical(review.content).walk("VEVENT")) >= 2


async def test_status_badge_is_embeddable_svg(web: Web) -> None:
    await web.stack.import_demo()
    ngo = await web.stack.monitoring_key("LICADHO")
    await web.stack.assess(ngo, "KHM-2-118.17", "partially_implemented")
    badge = await web.client.get("/badges/KHM-2-118.17.svg")
    assert badge.status_code == 200
    assert badge.headers["content-type"] == "image/svg+xml"
    assert "max-age" in badge.headers["cache-control"]
    assert badge.headers["access-control-allow-origin"] == "*"
    assert badge.headers["cross-origin-resource-policy"] == "cross-origin"
    root = ET.fromstring(badge.content)
    assert root.tag == f"{SVG}svg"
    assert "Partially implemented" in "".join(root.itertext())
    khmer = await web.client.get("/badges/KHM-2-118.17.svg", params={"lang": "km"})
    assert "បានអនុវត្តមួយផ្នែក" in "".join(ET.fromstring(khmer.content).itertext())
    shared_cache = await web.client.get(
        "/badges/KHM-2-118.17.svg", headers={"Accept-Language": "km"}
    )
    assert "Partially implemented" in "".join(ET.fromstring(shared_cache.content).itertext())
    unknown = await web.client.get("/badges/KHM-2-999.99.svg")
    assert unknown.status_code == 404
    assert ET.fromstring(unknown.content).tag == f"{SVG}svg"


async def test_upstream_down_gives_a_friendly_page() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    app = create_app(
        WebSettings(
            environment="test",
            catalog_url=closed,
            monitoring_url=closed,
            notifications_url=closed,
            upstream_timeout_s=2,
        )
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        for path in ("/", "/recommendations/KHM-2-118.17", "/dashboard", "/subscribe"):
            page = await client.get(path)
            assert page.status_code == 503, path
            assert page.headers["content-type"].startswith("text/html")
            assert "Temporarily unavailable" in page.text
            assert "Traceback" not in page.text and "httpx" not in page.text
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["catalog"].startswith("unreachable")
        badge = await client.get("/badges/KHM-2-118.17.svg")
        assert badge.status_code == 503 and b"<svg" in badge.content
        assert (await client.get("/metrics")).status_code == 200


async def test_subscribe_confirm_preferences_unsubscribe(web: Web) -> None:
    stack = web.stack
    await stack.import_demo()
    form = await web.client.get("/subscribe", params={"recommendation_id": "KHM-2-118.17"})
    assert form.status_code == 200
    assert 'value="KHM-2-118.17"' in form.text
    bad = await web.client.post("/subscribe", data={"contact": "email", "email": "not-an-address"})
    assert bad.status_code == 422
    assert 'aria-invalid="true"' in bad.text
    sent = await web.client.post(
        "/subscribe",
        data={
            "contact": "email",
            "email": "reader@example.org",
            "issues": ["Torture and other CID treatment"],
            "recommending_states": ["BEL"],
            "recommendation_ids": "KHM-2-118.17",
            "language": "km",
            "cadence": "weekly",
        },
    )
    assert sent.status_code == 202, sent.text
    await stack.until(lambda: len(stack.smtp.messages_to("reader@example.org")) == 1)
    [mail] = stack.smtp.messages_to("reader@example.org")
    confirm_url = link(mail, "/v1/confirm")
    assert confirm_url.startswith("http://web.test/v1/confirm?token=")
    page = await web.client.get(confirm_url)
    assert page.status_code == 200 and 'name="token"' in page.text
    token = confirm_url.split("token=")[1]
    forged = await web.client.post("/confirm", data={"token": token + "x"})
    assert forged.status_code == 403
    confirmed = await web.client.post("/confirm", data={"token": token})
    assert confirmed.status_code == 200, confirmed.text
    assert "Subscription confirmed" in confirmed.text
    [subscription] = (
        await stack.notifications.get("/v1/subscriptions", headers=stack.admin)
    ).json()
    assert subscription["confirmed"] and subscription["cadence"] == "weekly"
    assert subscription["filters"]["issues"] == ["Torture and other CID treatment"]
    assert subscription["filters"]["recommendation_ids"] == ["KHM-2-118.17"]

    preferences_url = link(mail, "/v1/preferences")
    prefs = await web.client.get(preferences_url.replace("/v1/preferences", "/preferences"))
    assert prefs.status_code == 200, prefs.text
    assert "reader@example.org" in prefs.text
    prefs_token = preferences_url.split("token=")[1]
    saved = await web.client.post(
        "/preferences",
        params={"token": prefs_token},
        data={"language": "en", "cadence": "daily", "timezone": "Asia/Phnom_Penh"},
    )
    assert saved.status_code == 200, saved.text
    assert "Your preferences are saved" in saved.text
    [subscription] = (
        await stack.notifications.get("/v1/subscriptions", headers=stack.admin)
    ).json()
    assert subscription["cadence"] == "daily"

    unsubscribe_url = link(mail, "/v1/unsubscribe")
    ask = await web.client.get(unsubscribe_url)
    assert ask.status_code == 200 and "Stop all alerts" in ask.text
    done = await web.client.post(
        "/unsubscribe",
        params={"token": unsubscribe_url.split("token=")[1]},
        data={"List-Unsubscribe": "One-Click"},
    )
    assert done.status_code == 200
    assert "You are unsubscribed" in done.text
    [subscription] = (
        await stack.notifications.get("/v1/subscriptions", headers=stack.admin)
    ).json()
    assert subscription["active"] is False
    expired = await web.client.get("/unsubscribe", params={"token": "nonsense"})
    assert expired.status_code == 403
    assert "This link does not work" in expired.text


async def test_subscribe_by_sms_and_confirm_with_the_code(web: Web) -> None:
    stack = web.stack
    sent = await web.client.post(
        "/subscribe", data={"contact": "phone", "phone": "+855 12 345 678", "language": "en"}
    )
    assert sent.status_code == 202, sent.text
    assert 'autocomplete="one-time-code"' in sent.text
    await stack.until(lambda: len(stack.sms.requests) == 1)
    code = re.search(r"\b(\d{6})\b", stack.sms.requests[0]["text"]).group(1)
    wrong = await web.client.post("/confirm", data={"phone": "+85512345678", "code": "000000"})
    assert wrong.status_code == 403
    confirmed = await web.client.post("/confirm", data={"phone": "+85512345678", "code": code})
    assert confirmed.status_code == 200, confirmed.text
    assert "Subscription confirmed" in confirmed.text


@pytest.mark.parametrize("path", ["/nowhere", "/recommendations/bad%20id"])
async def test_unknown_pages_are_friendly(web: Web, path: str) -> None:
    page = await web.client.get(path)
    assert page.status_code in {404, 422}
    assert page.headers["content-type"].startswith("text/html")
    assert "<h1>" in page.text and "Traceback" not in page.text


async def test_an_upstream_server_error_gives_a_502_page() -> None:
    async def broken(scope, receive, send) -> None:
        """A service that fails every request, as a crashing catalog would."""
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 500, "headers": []})
        await send({"type": "http.response.body", "body": b"Internal Server Error"})

    transport = httpx.ASGITransport(app=broken)
    app = create_app(
        WebSettings(environment="test"),
        transports={name: transport for name in ("catalog", "monitoring", "notifications")},
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        page = await client.get("/recommendations", params={"lang": "km"})
        assert page.status_code == 502
        assert '<html lang="km"' in page.text and "Internal Server Error" not in page.text
        feed = await client.get("/feeds/deadlines.ics", params={"state_under_review": "KHM"})
        assert feed.status_code == 502
        assert feed.headers["content-type"].startswith("text/plain")
