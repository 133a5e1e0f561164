"""Two replicas of each service over one database each: no double sends, no double reminders."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from pathlib import Path

from cli.sinks import SmsSink, SmtpSink
from services.catalog.app import create_app as create_catalog
from services.catalog.settings import CatalogSettings
from services.monitoring.app import create_app as create_monitoring
from services.monitoring.settings import MonitoringSettings
from services.notifications.app import create_app as create_notifications
from services.notifications.app import tick_reminders
from tests.faults.conftest import (
    STATUS_CHANGED,
    Stack,
    duplicates,
    eventually,
    follower,
    mail_ids,
    query,
    recommendations,
    sms_ids,
    stream_messages,
    summary,
)

CHANGES = 24
EMAIL, PHONE = "replicas@example.org", "+85512000008"
FOCAL = "focal@justice.gov.kh"
COORDINATOR = "coordinator@chrac.example.org"


async def test_two_replicas_of_each_service(
    make_database,
    stack_settings,
    http_client_for,
    nats_client,
    namespace: str,
    nats_url: str,
    smtp_sink: SmtpSink,
    sms_sink: SmsSink,
    tmp_path: Path,
) -> None:
    common, notifications_settings = stack_settings
    catalog_db, monitoring_db, notifications_db = [await make_database() for _ in range(3)]

    def pair(factory):
        return [factory() for _ in range(2)]

    catalogs = pair(lambda: create_catalog(CatalogSettings(database_url=catalog_db, **common)))
    monitorings = pair(
        lambda: create_monitoring(
            MonitoringSettings(
                database_url=monitoring_db, upload_dir=tmp_path / "evidence", **common
            )
        )
    )
    notifiers = pair(lambda: create_notifications(notifications_settings(notifications_db)))
    async with (
        http_client_for(catalogs[0]) as catalog_a,
        http_client_for(catalogs[1]) as catalog_b,
        http_client_for(monitorings[0]) as monitoring_a,
        http_client_for(monitorings[1]) as monitoring_b,
        http_client_for(notifiers[0]) as notifications_a,
        http_client_for(notifiers[1]) as notifications_b,
    ):
        admin = {"Authorization": f"Bearer {common['admin_api_key']}"}
        stack = Stack(
            catalog_a, monitoring_a, [notifications_a, notifications_b], admin, smtp_sink, sms_sink
        )
        await follower(stack, EMAIL, PHONE)
        # Hears of every overdue milestone of the review calendar.
        await stack.recipient(name="CHRAC coordinator", kind="coordinator", email=COORDINATOR)
        ministry = await stack.recipient(
            name="Ministry of Justice focal point", kind="ministry",
            organisation="Ministry of Justice", email=FOCAL, timezone="Asia/Phnom_Penh",
        )  # fmt: skip
        await stack.import_demo()
        adhoc = await stack.monitoring_key("ADHOC")
        # Writes spread over both replicas of catalog and monitoring.
        for n, rec in enumerate(recommendations(CHANGES, start=120)):
            stack.monitoring = (monitoring_a, monitoring_b)[n % 2]
            await stack.assess(adhoc, rec, "in_progress")
            renamed = await (catalog_a, catalog_b)[n % 2].patch(
                f"/v1/recommendations/{rec}", json={"text": f"Revised text {n}"}, headers=admin
            )
            assert renamed.status_code == 200, renamed.text
        editor = await stack.monitoring_key("OHCHR", role="editor")
        due = dt.date.today() + dt.timedelta(days=10)
        created = await monitoring_b.post(
            "/v1/deadlines",
            json={"title": "Report on the judiciary", "recommendation_id": "KHM-2-118.120",
                  "responsible_body": "Ministry of Justice", "due_on": due.isoformat()},
            headers=editor,
        )  # fmt: skip
        assert created.status_code == 201, created.text

        await stack.until(
            lambda: (
                len(mail_ids(stack, EMAIL)) >= CHANGES and len(sms_ids(stack, PHONE)) >= CHANGES
            ),
            timeout=60,
        )

        async def planned() -> bool:
            rows = await query(
                notifications_db, "SELECT count(*) FROM reminders WHERE kind = 'reminder'"
            )
            return rows[0][0] == 2

        await eventually(planned, timeout=15)
        # Both replicas' schedulers wake at once, twice, seven days before the deadline.
        seven_before = dt.datetime.combine(
            due - dt.timedelta(days=7), dt.time(2, 1), tzinfo=dt.UTC
        )  # 09:01 in Phnom Penh
        for app in notifiers:
            app.state.clock.offset = seven_before - dt.datetime.now(dt.UTC)
        for _ in range(2):
            await asyncio.gather(*(tick_reminders(app) for app in notifiers))
        await stack.until(lambda: len(smtp_sink.messages_to(FOCAL)) >= 1, timeout=15)
        await stack.until(lambda: len(smtp_sink.messages_to(COORDINATOR)) >= 4, timeout=15)
        await asyncio.sleep(2.0)

    status_deliveries = {
        row["id"]
        for row in await query(
            notifications_db, "SELECT id FROM deliveries WHERE event_type = $1", STATUS_CHANGED
        )
    }
    mails, texts = mail_ids(stack, EMAIL), sms_ids(stack, PHONE)
    assert {k[1:33] for k in mails} | set(texts) <= status_deliveries
    # Overdue notices and escalations of the review calendar: each once.
    calendar = Counter(str(m["Subject"]) for m in smtp_sink.messages_to(COORDINATOR))
    focal = Counter(str(m["Subject"]) for m in smtp_sink.messages_to(FOCAL))
    reminders = {s: n for s, n in focal.items() if "days left" in s}
    [handled] = await query(
        notifications_db, "SELECT count(*) FROM inbox WHERE event_type = $1", STATUS_CHANGED
    )
    [applied] = await query(
        monitoring_db,
        "SELECT count(*) FROM inbox WHERE event_type = 'upr.catalog.recommendation.updated'",
    )
    published = Counter(
        m.headers["Nats-Msg-Id"]
        for m in await stream_messages(nats_url, namespace.upper(), f"{namespace}.catalog.>")
    )
    dup = duplicates(mails) + duplicates(texts) + duplicates(published)
    double_reminders = duplicates(Counter(reminders)) + duplicates(calendar)
    print(
        summary(
            "two replicas of each service",
            events_sent=CHANGES * 2,
            events_handled=handled[0] + applied[0],
            delivered=sum(mails.values()) + sum(texts.values()),
            reminders=sum(reminders.values()) + sum(calendar.values()),
            duplicates=dup + double_reminders,
            lost=2 * CHANGES - len(mails) - len(texts),
        )
    )
    assert ministry["id"]
    assert handled[0] == CHANGES and applied[0] == CHANGES
    assert len(mails) == CHANGES and len(texts) == CHANGES
    assert dup == 0
    assert list(reminders.values()) == [1], focal
    assert all(n == 1 for n in calendar.values()), calendar
