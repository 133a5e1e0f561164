"""End to end across the three services, a real SMTP server and a real SMS gateway."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re

from tests.notifications.conftest import Stack

REC = "KHM-2-118.17"
KHMER = re.compile(r"[\u1780-\u17FF]")
EMBASSY = {
    "name": "Embassy of Belgium in Phnom Penh",
    "kind": "embassy",
    "represents_state": "BEL",
    "email": "embassy.belgium@example.org",
    "phone": "+85512345678",
    "language": "km",
    "timezone": "Asia/Phnom_Penh",
}


async def handled(stack: Stack, event_type: str, count: int) -> None:
    """Wait until the notifications service has handled count events of a type."""
    from sqlalchemy import func, select

    from shared.inbox import ProcessedEvent

    app = stack.notifications_app
    async with asyncio.timeout(15):
        while True:
            async with app.state.session_factory() as session:
                done = await session.scalar(
                    select(func.count()).where(ProcessedEvent.event_type == event_type)
                )
            if done >= count:
                return
            await asyncio.sleep(0.05)


def body_of(message) -> str:
    parts = [message] if not message.is_multipart() else list(message.walk())
    return "\n".join(
        p.get_content() for p in parts if p.get_content_type() in {"text/plain", "text/html"}
    )


async def test_the_belgian_embassy_hears_in_khmer_once(
    stack: Stack, nats_client, namespace
) -> None:
    embassy = await stack.recipient(**EMBASSY)
    await stack.import_demo()
    adhoc = await stack.monitoring_key("ADHOC")
    await stack.assess(adhoc, REC, "in_progress", summary="Draft law discussed")

    await stack.until(lambda: len(stack.smtp.messages_to(EMBASSY["email"])) == 1)
    await stack.until(
        lambda: len([r for r in stack.sms.requests if r["to"] == EMBASSY["phone"]]) == 1
    )
    [mail] = stack.smtp.messages_to(EMBASSY["email"])
    assert KHMER.search(str(mail["Subject"])) and KHMER.search(body_of(mail))
    assert "118.17" in body_of(mail)
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    [sms] = [r for r in stack.sms.requests if r["to"] == EMBASSY["phone"]]
    assert KHMER.search(sms["text"]) and "118.17" in sms["text"]

    # The same status.changed event delivered again sends nothing more.
    js = nats_client.jetstream()
    sub = await js.pull_subscribe(
        f"{namespace}.monitoring.status.changed", durable="peek", stream=namespace.upper()
    )
    [msg] = await sub.fetch(1, timeout=5)
    envelope = json.loads(msg.data)
    await js.publish(msg.subject, msg.data, headers={"Nats-Msg-Id": "again-" + envelope["id"]})
    await asyncio.sleep(2.0)
    assert len(stack.smtp.messages_to(EMBASSY["email"])) == 1
    assert len([r for r in stack.sms.requests if r["to"] == EMBASSY["phone"]]) == 1
    log = await stack.deliveries(recipient_id=embassy["id"])
    sent = [d for d in log if d["status"] == "sent" and d["kind"] == "status.changed"]
    assert sorted(d["channel"] for d in sent) == ["email", "sms"]


async def test_smtp_outage_is_retried_and_delivers_once(stack: Stack) -> None:
    await stack.recipient(**{**EMBASSY, "language": "en", "phone": None})
    await stack.import_demo()
    adhoc = await stack.monitoring_key("ADHOC")
    stack.smtp.stop()
    await stack.assess(adhoc, REC, "in_progress")
    async with asyncio.timeout(15):
        while True:
            log = await stack.deliveries(status="pending")
            if any(d["attempts"] >= 2 and d["last_error"] for d in log):
                break
            await asyncio.sleep(0.2)
    assert stack.smtp.messages_to(EMBASSY["email"]) == []
    stack.smtp.start()
    await stack.until(lambda: len(stack.smtp.messages_to(EMBASSY["email"])) == 1, timeout=20)
    await asyncio.sleep(1.5)
    assert len(stack.smtp.messages_to(EMBASSY["email"])) == 1
    [sent] = [d for d in await stack.deliveries(status="sent") if d["channel"] == "email"]
    assert sent["attempts"] >= 3


async def test_a_gateways_retry_after_is_respected(stack: Stack) -> None:
    await stack.recipient(**{**EMBASSY, "language": "en", "email": None})
    await stack.import_demo()
    stack.notifications_app.state.settings.retry_max_s = 3600.0
    stack.sms.fail_next(1, status=429, retry_after=600)
    before = dt.datetime.now(dt.UTC)
    await stack.assess(await stack.monitoring_key("ADHOC"), REC, "in_progress")
    async with asyncio.timeout(15):
        while not (log := [d for d in await stack.deliveries() if d["attempts"] == 1]):
            await asyncio.sleep(0.1)
    [waiting] = log
    assert waiting["status"] == "pending" and "429" in waiting["last_error"]
    # Backoff alone would retry within seconds; the gateway asked for ten minutes.
    wait = dt.datetime.fromisoformat(waiting["next_attempt_at"]) - before
    assert dt.timedelta(minutes=9) < wait < dt.timedelta(minutes=11)
    assert stack.sms.requests == []


async def test_an_unsubscribed_recipient_gets_nothing(stack: Stack) -> None:
    embassy = await stack.recipient(**{**EMBASSY, "phone": None, "language": "en"})
    await stack.import_demo()
    adhoc = await stack.monitoring_key("ADHOC")
    await stack.assess(adhoc, REC, "in_progress")
    await stack.until(lambda: len(stack.smtp.messages_to(EMBASSY["email"])) == 1)
    [mail] = stack.smtp.messages_to(EMBASSY["email"])
    link = re.search(r"<([^>]+)>", mail["List-Unsubscribe"]).group(1)
    path = link.split("8003", 1)[-1] if "8003" in link else link
    one_click = await stack.notifications.post(
        path, content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    assert one_click.status_code == 200, one_click.text
    await stack.assess(adhoc, REC, "partially_implemented")
    async with asyncio.timeout(10):
        while True:
            skipped = await stack.deliveries(recipient_id=embassy["id"], status="skipped")
            if skipped:
                break
            await asyncio.sleep(0.1)
    assert skipped[0]["reason"] == "unsubscribed"
    await asyncio.sleep(1.0)
    assert len(stack.smtp.messages_to(EMBASSY["email"])) == 1


async def test_a_reminder_fires_at_its_lead_time_and_stops_once_met(stack: Stack) -> None:
    ministry = await stack.recipient(
        name="Ministry of Information focal point",
        kind="ministry",
        organisation="Ministry of Information",
        email="focal@information.gov.kh",
        timezone="Asia/Phnom_Penh",
    )
    await stack.import_demo()
    editor = await stack.monitoring_key("OHCHR", role="editor")
    due = dt.date.today() + dt.timedelta(days=10)
    created = await stack.monitoring.post(
        "/v1/deadlines",
        json={"title": "Report on the access to information law", "recommendation_id": REC,
              "responsible_body": "Ministry of Information", "due_on": due.isoformat()},
        headers=editor,
    )  # fmt: skip
    assert created.status_code == 201
    app = stack.notifications_app
    from services.notifications.app import tick_reminders
    from services.notifications.models import Reminder

    async with asyncio.timeout(10):
        while True:
            async with app.state.session_factory() as session:
                from sqlalchemy import select

                planned = list(await session.scalars(select(Reminder)))
            if planned:
                break
            await asyncio.sleep(0.1)
    assert sorted((r.kind, r.lead_days) for r in planned if r.kind == "reminder") == [
        ("reminder", 1),
        ("reminder", 7),
    ]

    async def reminders_sent() -> list[dict]:
        return [
            d
            for d in await stack.deliveries(recipient_id=ministry["id"])
            if d["kind"] in {"reminder", "overdue", "escalation"}
        ]

    # Not yet: nothing is due today.
    await tick_reminders(app)
    await asyncio.sleep(0.5)
    assert await reminders_sent() == []
    before = len(stack.smtp.messages_to("focal@information.gov.kh"))

    # Seven days before, at nine in Phnom Penh, the reminder goes out.
    seven_before = dt.datetime.combine(
        due - dt.timedelta(days=7), dt.time(2, 1), tzinfo=dt.UTC
    )  # 09:01 in Phnom Penh (UTC+7)
    app.state.clock.offset = seven_before - dt.datetime.now(dt.UTC)
    await tick_reminders(app)
    await stack.until(lambda: len(stack.smtp.messages_to("focal@information.gov.kh")) == before + 1)
    mail = stack.smtp.messages_to("focal@information.gov.kh")[-1]
    assert "7 days left" in str(mail["Subject"])
    await tick_reminders(app)
    await asyncio.sleep(0.5)
    assert len(stack.smtp.messages_to("focal@information.gov.kh")) == before + 1

    # The deadline is met: the one-day reminder and the overdue notice never come.
    met = await stack.monitoring.post(
        f"/v1/deadlines/{created.json()['id']}/met", json={}, headers=editor
    )
    assert met.status_code == 200
    async with asyncio.timeout(10):
        while True:
            async with app.state.session_factory() as session:
                left = [
                    r for r in await session.scalars(select(Reminder)) if r.status == "scheduled"
                ]
            if not left:
                break
            await asyncio.sleep(0.1)
    app.state.clock.offset = dt.datetime.combine(
        due + dt.timedelta(days=30), dt.time(3), tzinfo=dt.UTC
    ) - dt.datetime.now(dt.UTC)
    await tick_reminders(app)
    await asyncio.sleep(1.0)
    assert [d["kind"] for d in await reminders_sent()] == ["reminder"]


async def test_a_ministry_that_joins_later_still_gets_its_reminders(stack: Stack) -> None:
    from sqlalchemy import select

    from services.notifications.models import Reminder

    await stack.import_demo()
    editor = await stack.monitoring_key("OHCHR", role="editor")
    due = dt.date.today() + dt.timedelta(days=40)
    for body in ("Ministry of Interior", "Ministry of Justice"):
        created = await stack.monitoring.post(
            "/v1/deadlines",
            json={"title": f"Report by {body}", "recommendation_id": REC,
                  "responsible_body": body, "due_on": due.isoformat()},
            headers=editor,
        )  # fmt: skip
        assert created.status_code == 201, created.text
    from services.notifications.models import TrackedDeadline

    async with asyncio.timeout(15):
        while True:
            async with stack.notifications_app.state.session_factory() as session:
                tracked = list(await session.scalars(select(TrackedDeadline)))
            bodies = {t.snapshot.get("responsible_body") for t in tracked}
            if {"Ministry of Interior", "Ministry of Justice"} <= bodies:
                break
            await asyncio.sleep(0.1)

    async def planned_for(recipient_id: str) -> list[tuple[str, int | None]]:
        async with stack.notifications_app.state.session_factory() as session:
            rows = await session.scalars(
                select(Reminder).where(Reminder.recipient_id == recipient_id)
            )
            return sorted((r.kind, r.lead_days) for r in rows if r.kind != "escalation")

    ministry = await stack.recipient(
        name="Ministry of Justice focal point", kind="ministry",
        organisation="Ministry of Justice", email="focal@justice.gov.kh",
    )  # fmt: skip
    expected = [("overdue", None), ("reminder", 1), ("reminder", 7), ("reminder", 30)]
    assert await planned_for(ministry["id"]) == expected
    # Moving the focal point to another ministry plans that ministry's deadline too, once.
    moved = await stack.notifications.patch(
        f"/v1/recipients/{ministry['id']}",
        json={"organisation": "Ministry of Interior"},
        headers=stack.admin,
    )
    assert moved.status_code == 200, moved.text
    assert len(await planned_for(ministry["id"])) == 2 * len(expected)
    unrelated = await stack.recipient(
        name="An NGO", kind="ngo", organisation="Ministry of Justice", email="ngo@example.org"
    )
    assert await planned_for(unrelated["id"]) == []


async def test_self_service_double_opt_in(stack: Stack) -> None:
    await stack.import_demo()
    subscribe = await stack.notifications.post(
        "/v1/subscribe",
        json={"email": "reader@example.org", "language": "en",
              "filters": {"recommendation_ids": [REC],
                          "event_types": ["upr.monitoring.status.changed"]}},
    )  # fmt: skip
    assert subscribe.status_code == 202
    await stack.until(lambda: len(stack.smtp.messages_to("reader@example.org")) == 1)
    adhoc = await stack.monitoring_key("ADHOC")
    await stack.assess(adhoc, REC, "in_progress")
    await handled(stack, "upr.monitoring.status.changed", 1)
    await asyncio.sleep(0.5)
    assert len(stack.smtp.messages_to("reader@example.org")) == 1  # not confirmed yet

    [confirmation] = stack.smtp.messages_to("reader@example.org")
    token = re.search(r"/v1/confirm\?token=([\w.\-]+)", body_of(confirmation)).group(1)
    assert (
        await stack.notifications.get("/v1/confirm", params={"token": token + "x"})
    ).status_code == 403
    assert (
        await stack.notifications.get("/v1/confirm", params={"token": token})
    ).status_code == 200
    await stack.assess(adhoc, REC, "partially_implemented")
    await stack.until(lambda: len(stack.smtp.messages_to("reader@example.org")) == 2)

    latest = stack.smtp.messages_to("reader@example.org")[-1]
    preferences = re.search(r"/v1/preferences\?token=([\w.\-]+)", body_of(latest)).group(1)
    mine = await stack.notifications.get("/v1/preferences", params={"token": preferences})
    assert mine.json()["recipient"]["email"] == "reader@example.org"
    unsubscribe_token = re.search(r"token=([\w.\-]+)", latest["List-Unsubscribe"]).group(1)
    wrong_purpose = await stack.notifications.get(
        "/v1/preferences", params={"token": unsubscribe_token}
    )
    assert wrong_purpose.status_code == 403
    changed = await stack.notifications.put(
        "/v1/preferences", params={"token": preferences}, json={"cadence": "daily"}
    )
    assert changed.status_code == 200


async def test_two_replicas_send_each_message_once(
    stack: Stack, stack_settings, http_client_for
) -> None:
    from services.notifications.app import create_app as create_notifications

    _common, notifications_settings = stack_settings
    app = stack.notifications_app
    second = create_notifications(notifications_settings(app.state.settings.database_url))
    async with http_client_for(second):
        addresses = [f"ngo{n}@example.org" for n in range(20)]
        for n, address in enumerate(addresses):
            recipient = await stack.recipient(name=f"NGO {n}", kind="ngo", email=address)
            response = await stack.notifications.post(
                "/v1/subscriptions",
                json={"recipient_id": recipient["id"], "channels": ["email"],
                      "filters": {"recommending_states": ["BEL"],
                                  "event_types": ["upr.monitoring.status.changed"]}},
                headers=stack.admin,
            )  # fmt: skip
            assert response.status_code == 201
        await stack.import_demo()
        adhoc = await stack.monitoring_key("ADHOC")
        await stack.assess(adhoc, REC, "in_progress")
        await stack.assess(adhoc, "KHM-2-118.1", "in_progress")
        await stack.until(
            lambda: all(len(stack.smtp.messages_to(a)) == 1 for a in addresses), timeout=20
        )
        await asyncio.sleep(2.0)
        assert all(len(stack.smtp.messages_to(a)) == 1 for a in addresses)


async def test_a_daily_digest_gathers_the_day_into_one_message(stack: Stack) -> None:
    coordinator = await stack.recipient(
        name="CHRAC coordinator",
        kind="coordinator",
        phone="+85512345679",
        timezone="Asia/Phnom_Penh",
    )
    response = await stack.notifications.post(
        "/v1/subscriptions",
        json={"recipient_id": coordinator["id"], "channels": ["sms"], "cadence": "daily",
              "filters": {"event_types": ["upr.monitoring.status.changed"]}},
        headers=stack.admin,
    )  # fmt: skip
    assert response.status_code == 201
    await stack.import_demo()
    adhoc = await stack.monitoring_key("ADHOC")
    for rec in ("KHM-2-118.17", "KHM-2-118.18", "KHM-2-118.19"):
        await stack.assess(adhoc, rec, "in_progress")
    async with asyncio.timeout(10):
        while len(await stack.deliveries(recipient_id=coordinator["id"], status="queued")) < 3:
            await asyncio.sleep(0.1)
    app = stack.notifications_app
    from services.notifications.app import tick_digests

    await tick_digests(app)
    assert not [r for r in stack.sms.requests if r["to"] == "+85512345679"]
    app.state.clock.offset = dt.timedelta(days=1, hours=1)
    await tick_digests(app)
    await tick_digests(app)
    await stack.until(lambda: any(r["to"] == "+85512345679" for r in stack.sms.requests))
    await asyncio.sleep(0.5)
    [digest] = [r for r in stack.sms.requests if r["to"] == "+85512345679"]
    assert "3" in digest["text"]
    log = await stack.deliveries(recipient_id=coordinator["id"])
    assert sorted(d["status"] for d in log) == ["digested", "digested", "digested", "sent"]
