"""Routing rules: filters, built-in routing, quiet hours, digest periods."""

from __future__ import annotations

import datetime as dt

from services.notifications.digests import period_end
from services.notifications.models import Recipient
from services.notifications.routing import (
    builtin_match,
    deferred_until,
    facets,
    matches,
    new_delivery,
)

STATUS_CHANGED = {
    "recommendation": {
        "id": "KHM-2-118.17",
        "number": "118.17",
        "cycle": 2,
        "state_under_review": "KHM",
        "recommending_states": [{"iso3": "BEL", "name": "Belgium"}],
        "issues": ["Freedom of opinion and expression"],
        "responsible_bodies": [{"name": "Ministry of Information", "role": "lead"}],
    },
    "previous_status": "no_data",
    "status": "in_progress",
}


def recipient(**values) -> Recipient:
    base = {
        "id": "r1",
        "name": "x",
        "kind": "ngo",
        "email": "x@example.org",
        "phone": None,
        "email_confirmed": True,
        "phone_confirmed": True,
        "webhook_url": None,
        "timezone": "Asia/Phnom_Penh",
        "quiet_hours_start": None,
        "quiet_hours_end": None,
        "builtin_routing": True,
        "builtin_channels": [],
        "unsubscribed_at": None,
        "represents_state": None,
        "organisation": None,
    }
    return Recipient(**{**base, **values})


def test_filters_match_every_facet() -> None:
    values = facets("upr.monitoring.status.changed", STATUS_CHANGED)
    assert matches({}, values)
    assert matches({"recommending_states": ["BEL", "FRA"], "statuses": ["in_progress"]}, values)
    assert matches({"responsible_bodies": ["Ministry of Information"], "cycles": [2]}, values)
    assert not matches({"recommending_states": ["FRA"]}, values)
    assert not matches({"statuses": ["fully_implemented"]}, values)
    assert not matches({"event_types": ["upr.monitoring.evidence.added"]}, values)
    assert not matches({"issues": ["Death penalty"], "recommending_states": ["BEL"]}, values)


def test_builtin_routing_follows_embassies_and_ministries() -> None:
    values = facets("upr.monitoring.status.changed", STATUS_CHANGED)
    assert builtin_match(recipient(kind="embassy", represents_state="BEL"), values)
    assert not builtin_match(recipient(kind="embassy", represents_state="FRA"), values)
    assert builtin_match(recipient(kind="ministry", organisation="Ministry of Information"), values)
    assert not builtin_match(
        recipient(kind="embassy", represents_state="BEL", builtin_routing=False), values
    )


def test_quiet_hours_defer_until_they_end_in_local_time() -> None:
    night = recipient(quiet_hours_start="21:00", quiet_hours_end="07:00")
    # 23:30 in Phnom Penh (UTC+7) is 16:30 UTC.
    late = dt.datetime(2026, 3, 10, 16, 30, tzinfo=dt.UTC)
    assert deferred_until(night, late) == dt.datetime(2026, 3, 11, 0, 0, tzinfo=dt.UTC)
    noon = dt.datetime(2026, 3, 10, 5, 0, tzinfo=dt.UTC)
    assert deferred_until(night, noon) is None
    row = new_delivery(
        event_id="e", event_type="t", kind="status.changed", recipient=night, channel="email",
        cadence="immediate", context={}, now=late,
    )  # fmt: skip
    assert row["status"] == "pending" and row["reason"] == "deferred by quiet hours"


def test_skips_are_recorded_with_their_reason() -> None:
    now = dt.datetime(2026, 3, 10, 5, 0, tzinfo=dt.UTC)
    gone = recipient(unsubscribed_at=now)
    no_phone = recipient()
    common = {"event_id": "e", "event_type": "t", "kind": "k", "cadence": "immediate",
              "context": {}, "now": now}  # fmt: skip
    assert new_delivery(recipient=gone, channel="email", **common)["reason"] == "unsubscribed"
    assert new_delivery(recipient=no_phone, channel="sms", **common)["reason"] == (
        "no address for the sms channel"
    )
    assert (
        new_delivery(recipient=no_phone, channel="email", **{**common, "cadence": "daily"})[
            "status"
        ]
        == "queued"
    )


def test_digest_periods_close_at_the_local_digest_hour() -> None:
    created = dt.datetime(2026, 3, 10, 5, 0, tzinfo=dt.UTC)  # 12:00 in Phnom Penh, a Tuesday
    daily = period_end(created, "daily", "Asia/Phnom_Penh", 8)
    assert daily == dt.datetime(2026, 3, 11, 1, 0, tzinfo=dt.UTC)  # 08:00 next morning
    weekly = period_end(created, "weekly", "Asia/Phnom_Penh", 8)
    assert weekly == dt.datetime(2026, 3, 16, 1, 0, tzinfo=dt.UTC)  # Monday 08:00


async def test_skipped_deliveries_are_counted_when_their_transaction_commits(
    postgres_url: str,
) -> None:
    from prometheus_client import REGISTRY

    from services.notifications.app import MIGRATIONS
    from services.notifications.models import Recipient as RecipientRow
    from services.notifications.routing import insert_deliveries
    from shared import migrate
    from shared.db import create_engine, create_session_factory

    def skipped() -> float:
        labels = {"channel": "email", "outcome": "skipped"}
        return REGISTRY.get_sample_value("upr_deliveries_total", labels) or 0.0

    engine = create_engine(postgres_url)
    try:
        await migrate.upgrade(engine, MIGRATIONS)
        factory = create_session_factory(engine)
        now = dt.datetime(2026, 11, 29, tzinfo=dt.UTC)
        gone = recipient(id="gone", unsubscribed_at=now)
        async with factory() as session:
            session.add(RecipientRow(**{c: getattr(gone, c) for c in ("id", "name", "kind")}))
            await session.commit()

        def row(event_id: str) -> dict:
            return new_delivery(
                event_id=event_id, event_type="upr.monitoring.status.changed",
                kind="status.changed", recipient=gone, channel="email",
                cadence="immediate", context={}, now=now,
            )  # fmt: skip

        before = skipped()
        async with factory() as session:
            assert await insert_deliveries(session, [row("e1")]) == 1
            await session.rollback()
        assert skipped() == before  # rolled back: nothing was recorded, nothing counted
        async with factory() as session:
            assert await insert_deliveries(session, [row("e2")]) == 1
            assert skipped() == before  # not yet committed
            await session.commit()
        assert skipped() == before + 1
    finally:
        await engine.dispose()
