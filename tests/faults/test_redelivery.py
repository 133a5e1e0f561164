"""The same event published twice and delivered three times has one effect."""

from __future__ import annotations

import asyncio
import json

import nats

from tests.faults.conftest import (
    STATUS_CHANGED,
    Stack,
    follower,
    mail_ids,
    query,
    recommendations,
    stream_messages,
    summary,
)

EMAIL = "once@example.org"


async def test_published_twice_delivered_three_times_one_effect(
    stack: Stack, nats_client: nats.NATS, namespace: str, nats_url: str
) -> None:
    await follower(stack, EMAIL)
    await stack.import_demo()
    adhoc = await stack.monitoring_key("ADHOC")
    [rec] = recommendations(1, start=50)
    await stack.assess(adhoc, rec, "in_progress")
    await stack.until(lambda: len(mail_ids(stack, EMAIL)) == 1)
    subject = f"{namespace}.monitoring.status.changed"
    [original] = await stream_messages(nats_url, namespace.upper(), subject)
    event_id = json.loads(original.data)["id"]

    js = nats_client.jetstream()
    # A publisher retry (same Nats-Msg-Id): the stream keeps one copy.
    again = await js.publish(subject, original.data, headers={"Nats-Msg-Id": event_id})
    assert again.duplicate
    # Past the dedup window (another id), the same event reaches the consumer twice more.
    for copy in ("replay-1", "replay-2"):
        await js.publish(subject, original.data, headers={"Nats-Msg-Id": f"{copy}-{event_id}"})
    in_stream = await stream_messages(nats_url, namespace.upper(), subject)
    assert len(in_stream) == 3

    db = stack.notifications_app.state.settings.database_url

    async def consumer_caught_up() -> bool:
        info = await js.consumer_info(namespace.upper(), "notifications")
        return info.num_pending == 0 and info.num_ack_pending == 0

    async with asyncio.timeout(15):
        while not await consumer_caught_up():
            await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)
    [handled] = await query(
        db, "SELECT count(*) FROM inbox WHERE event_id = $1 AND event_type = $2",
        event_id, STATUS_CHANGED,
    )  # fmt: skip
    [rows] = await query(db, "SELECT count(*) FROM deliveries WHERE event_id = $1", event_id)
    mails = mail_ids(stack, EMAIL)
    print(
        summary(
            "same event published twice, delivered three times",
            events_sent=4,
            events_in_stream=len(in_stream),
            events_handled=handled[0],
            delivered=sum(mails.values()),
            duplicates=sum(mails.values()) - len(mails),
            lost=1 - len(mails),
        )
    )
    assert handled[0] == 1
    assert rows[0] == 1
    assert sum(mails.values()) == 1
