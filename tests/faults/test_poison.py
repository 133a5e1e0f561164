"""Poison events at the services: dead-lettered with their error, and the consumers go on."""

from __future__ import annotations

import json
import uuid

import nats

from tests.faults.conftest import (
    Stack,
    eventually,
    follower,
    mail_ids,
    query,
    recommendations,
    stream_messages,
    summary,
)

EMAIL = "after-poison@example.org"


def impossible(event_type: str, data: dict) -> bytes:
    """A valid CloudEvents envelope whose data cannot be what the type says."""
    return json.dumps(
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "upr/attacker",
            "type": event_type,
            "subject": "x",
            "time": "2026-01-01T00:00:00Z",
            "datacontenttype": "application/json",
            "dataschema": "urn:upr:event:whatever:1",
            "data": data,
        }
    ).encode()


async def test_poison_events_are_dead_lettered_and_consumers_go_on(
    stack: Stack, nats_client: nats.NATS, namespace: str, nats_url: str
) -> None:
    await follower(stack, EMAIL)
    await stack.import_demo()
    js = nats_client.jetstream()
    status_poison = [
        b"\x00not json at all {",
        impossible(
            "upr.monitoring.status.changed",
            {"recommendation": "none", "status": "teleported", "previous": 42},
        ),
    ]
    catalog_poison = [
        b"[1, 2, 3",
        impossible("upr.catalog.recommendation.created", {"recommendation": None}),
    ]
    for payload in status_poison:
        await js.publish(f"{namespace}.monitoring.status.changed", payload)
    for payload in catalog_poison:
        await js.publish(f"{namespace}.catalog.recommendation.created", payload)
    # notifications consumes both kinds; monitoring only catalog events.
    poison = {
        "notifications": status_poison + catalog_poison,
        "monitoring-catalog": catalog_poison,
    }

    # A good event after the poison still flows through both services.
    adhoc = await stack.monitoring_key("ADHOC")
    [rec] = recommendations(1, start=60)
    await stack.assess(adhoc, rec, "in_progress")
    await stack.until(lambda: len(mail_ids(stack, EMAIL)) == 1, timeout=30)
    renamed = await stack.catalog.patch(
        f"/v1/recommendations/{rec}", json={"text": "Ratify, after the poison"}, headers=stack.admin
    )
    assert renamed.status_code == 200, renamed.text
    monitoring_db = stack.monitoring._transport.app.state.settings.database_url  # type: ignore[attr-defined]

    async def monitoring_went_on() -> bool:
        [row] = await query(
            monitoring_db,
            "SELECT count(*) FROM inbox WHERE event_type = 'upr.catalog.recommendation.updated'",
        )
        return row[0] == 1

    await eventually(monitoring_went_on, timeout=15)

    dead: dict[str, list] = {}
    for durable in poison:
        dead[durable] = await stream_messages(
            nats_url, f"{namespace.upper()}_DLQ", f"{namespace}_dlq.{durable}"
        )
    total = sum(len(m) for m in poison.values())  # one dead letter per consumer and message
    print(
        summary(
            "poison events",
            events_sent=len(status_poison) + len(catalog_poison) + 1,
            dead_lettered=sum(len(m) for m in dead.values()),
            delivered=len(mail_ids(stack, EMAIL)),
            lost=total - sum(len(m) for m in dead.values()),
        )
    )
    for durable, messages in poison.items():
        assert sorted(m.data for m in dead[durable]) == sorted(messages)
        for msg in dead[durable]:
            assert msg.headers["Upr-Dlq-Error"]
            assert msg.headers["Upr-Dlq-Consumer"] == durable
    errors = [m.headers["Upr-Dlq-Error"] for m in dead["notifications"]]
    assert any("not a valid event envelope" in e for e in errors)
    assert any("cannot read upr.monitoring.status.changed" in e for e in errors)
