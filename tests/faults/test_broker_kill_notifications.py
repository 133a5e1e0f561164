"""kill -9 the broker in the middle of a stream of status changes: every event arrives, and
no notification is sent twice."""

from __future__ import annotations

import asyncio

from cli.nats_server import NatsServer
from tests.faults.conftest import (
    STATUS_CHANGED,
    Stack,
    duplicates,
    follower,
    mail_ids,
    query,
    recommendations,
    sms_ids,
    summary,
)

CHANGES = 45
EMAIL, PHONE = "coordinator@example.org", "+85512000001"


async def test_broker_kill_mid_stream_of_status_changes(
    stack: Stack, private_nats: NatsServer
) -> None:
    await follower(stack, EMAIL, PHONE)
    await stack.import_demo()
    adhoc = await stack.monitoring_key("ADHOC")
    for n, rec in enumerate(recommendations(CHANGES)):
        if n == CHANGES // 3:
            private_nats.kill()
        if n == 2 * CHANGES // 3:
            private_nats.start()
        await stack.assess(adhoc, rec, "in_progress", summary=f"step {n}")
        await asyncio.sleep(0.02)

    await stack.until(
        lambda: len(mail_ids(stack, EMAIL)) >= CHANGES and len(sms_ids(stack, PHONE)) >= CHANGES,
        timeout=90,
    )
    await asyncio.sleep(2.0)  # room for a late duplicate to show up
    notifications_db = stack.notifications_app.state.settings.database_url
    [handled] = await query(
        notifications_db, "SELECT count(*) FROM inbox WHERE event_type = $1", STATUS_CHANGED
    )
    mails, texts = mail_ids(stack, EMAIL), sms_ids(stack, PHONE)
    dup = duplicates(mails) + duplicates(texts)
    lost = 2 * CHANGES - len(mails) - len(texts)
    print(
        summary(
            "broker kill -9 mid status changes",
            events_sent=CHANGES,
            events_handled=handled[0],
            delivered=sum(mails.values()) + sum(texts.values()),
            duplicates=dup,
            lost=lost,
        )
    )
    assert handled[0] == CHANGES
    assert lost == 0
    assert dup == 0
