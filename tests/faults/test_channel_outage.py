"""SMTP server and SMS gateway down for a while, then back: all delivered, retries recorded."""

from __future__ import annotations

import asyncio

from tests.faults.conftest import (
    Stack,
    duplicates,
    follower,
    mail_ids,
    recommendations,
    sms_ids,
    summary,
)

CHANGES = 10
EMAIL, PHONE = "outage@example.org", "+85512000002"


async def test_smtp_and_sms_down_then_back(stack: Stack) -> None:
    # A retry budget longer than the outage (the test's backoff is well under a second).
    stack.notifications_app.state.settings.max_attempts = 50
    recipient = await follower(stack, EMAIL, PHONE)
    await stack.import_demo()
    adhoc = await stack.monitoring_key("ADHOC")
    stack.smtp.stop()
    stack.sms.stop()
    for rec in recommendations(CHANGES, start=30):
        await stack.assess(adhoc, rec, "in_progress")

    async def retried_on_both_channels() -> bool:
        pending = await stack.deliveries(recipient_id=recipient["id"], status="pending")
        retried = [d for d in pending if d["attempts"] >= 2 and d["last_error"]]
        return len(retried) == 2 * CHANGES

    async with asyncio.timeout(30):
        while not await retried_on_both_channels():
            await asyncio.sleep(0.1)
    assert not stack.smtp.received and not stack.sms.requests
    stack.smtp.start()
    stack.sms.start()

    await stack.until(
        lambda: len(mail_ids(stack, EMAIL)) >= CHANGES and len(sms_ids(stack, PHONE)) >= CHANGES,
        timeout=30,
    )
    await asyncio.sleep(1.5)
    log = await stack.deliveries(recipient_id=recipient["id"])
    sent = [d for d in log if d["status"] == "sent"]
    mails, texts = mail_ids(stack, EMAIL), sms_ids(stack, PHONE)
    dup = duplicates(mails) + duplicates(texts)
    print(
        summary(
            "smtp and sms gateway outage",
            events_sent=CHANGES,
            events_handled=len({d["event_id"] for d in log}),
            delivered=sum(mails.values()) + sum(texts.values()),
            duplicates=dup,
            lost=2 * CHANGES - len(sent),
            min_attempts=min(d["attempts"] for d in sent),
        )
    )
    assert len(sent) == 2 * CHANGES
    assert sorted({d["channel"] for d in sent}) == ["email", "sms"]
    assert all(d["attempts"] > 1 for d in sent)
    assert dup == 0
