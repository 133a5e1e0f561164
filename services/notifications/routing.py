"""Use case: route an event to the recipients who follow it, one delivery per channel."""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.notifications.models import Delivery, Recipient, Subscription
from shared.db import is_postgres
from shared.events import Envelope

# Channels of the skipped deliveries this unit of work inserted, counted when it commits (app.py).
SKIPPED_KEY = "skipped_delivery_channels"
USER_EVENT_TYPES = frozenset(
    {
        "upr.catalog.recommendation.created",
        "upr.catalog.recommendation.updated",
        "upr.catalog.recommendation.response_changed",
        "upr.catalog.recommendation.assigned",
        "upr.catalog.recommendation.prioritised",
        "upr.monitoring.assessment.recorded",
        "upr.monitoring.status.changed",
        "upr.monitoring.evidence.added",
        "upr.monitoring.evidence.verified",
        "upr.monitoring.indicator.measured",
        "upr.monitoring.deadline.set",
        "upr.monitoring.deadline.met",
    }
)
# What an embassy or a ministry hears about without subscribing (switchable per recipient).
BUILTIN_EVENT_TYPES = frozenset(
    {
        "upr.catalog.recommendation.response_changed",
        "upr.catalog.recommendation.assigned",
        "upr.monitoring.status.changed",
        "upr.monitoring.deadline.set",
        "upr.monitoring.deadline.met",
    }
)
CADENCE_RANK = {"immediate": 0, "daily": 1, "weekly": 2}


def kind_of(event_type: str) -> str:
    """The template kind of an event type: upr.monitoring.status.changed -> status.changed."""
    return event_type.split(".", 2)[2]


def _recommendation(data: dict[str, Any]) -> dict[str, Any] | None:
    rec = data.get("recommendation")
    if not isinstance(rec, dict):
        return None
    sur = rec.get("state_under_review")
    return {
        "id": rec.get("id"),
        "number": rec.get("number"),
        "text": rec.get("text"),
        "cycle": rec.get("cycle"),
        "state_under_review": sur.get("iso3") if isinstance(sur, dict) else sur,
        "recommending_states": rec.get("recommending_states") or [],
        "issues": rec.get("issues") or [],
        "responsible_bodies": rec.get("responsible_bodies") or [],
        "response": (rec.get("response") or {}).get("position")
        if isinstance(rec.get("response"), dict)
        else rec.get("response"),
    }


def facets(event_type: str, data: dict[str, Any]) -> dict[str, set[Any]]:
    """The values of an event that subscription filters match against."""
    rec = _recommendation(data) or {}
    status = data.get("status") if event_type == "upr.monitoring.status.changed" else None
    deadline = data.get("deadline") or {}
    bodies = {b.get("name") for b in rec.get("responsible_bodies", []) if isinstance(b, dict)}
    if deadline.get("responsible_body"):
        bodies.add(deadline["responsible_body"])
    return {
        "recommendation_ids": {rec["id"]} if rec.get("id") else set(),
        "issues": set(rec.get("issues", [])),
        "recommending_states": {c.get("iso3") for c in rec.get("recommending_states", [])},
        "responsible_bodies": bodies,
        "statuses": {status} if status else set(),
        "event_types": {event_type},
        "cycles": {rec.get("cycle") or deadline.get("cycle")} - {None},
        "states_under_review": {rec.get("state_under_review") or deadline.get("state_under_review")}
        - {None},
    }


def matches(filters: dict[str, list[Any]], values: dict[str, set[Any]]) -> bool:
    """Every non-empty filter shares at least one value with the event."""
    return all(
        not wanted or set(wanted) & values.get(name, set()) for name, wanted in filters.items()
    )


def context_for(envelope: Envelope) -> dict[str, Any]:
    """What templates receive about an event (links are added when the message is sent)."""
    data = dict(envelope.data)
    rec = _recommendation(data)
    data.pop("recommendation", None)
    return {
        "event": {"id": envelope.id, "type": envelope.type, "time": envelope.time.isoformat()},
        "recommendation": rec,
        "data": data,
    }


def _in_quiet_hours(recipient: Recipient, now: dt.datetime) -> dt.datetime | None:
    """When quiet hours end, if now falls inside them (in the recipient's time zone)."""
    if not recipient.quiet_hours_start or not recipient.quiet_hours_end:
        return None
    zone = zoneinfo.ZoneInfo(recipient.timezone)
    local = now.astimezone(zone)
    start = dt.time.fromisoformat(recipient.quiet_hours_start)
    end = dt.time.fromisoformat(recipient.quiet_hours_end)
    t = local.time()
    inside = start <= t < end if start < end else (t >= start or t < end)
    if not inside:
        return None
    end_day = local.date() if t < end else local.date() + dt.timedelta(days=1)
    return dt.datetime.combine(end_day, end, tzinfo=zone).astimezone(dt.UTC)


def deferred_until(recipient: Recipient, now: dt.datetime) -> dt.datetime | None:
    """The end of the recipient's quiet hours when now falls inside them."""
    return _in_quiet_hours(recipient, now)


def address_for(recipient: Recipient, channel: str) -> str | None:
    """The recipient's confirmed address on a channel."""
    if channel == "email":
        return recipient.email if recipient.email_confirmed else None
    if channel == "sms":
        return recipient.phone if recipient.phone_confirmed else None
    return recipient.webhook_url


def default_channels(recipient: Recipient) -> list[str]:
    """Built-in routing's channels: the recipient's choice, else every channel it has."""
    if recipient.builtin_channels:
        return list(recipient.builtin_channels)
    return [c for c in ("email", "sms", "webhook") if address_for(recipient, c)]


def builtin_match(recipient: Recipient, values: dict[str, set[Any]]) -> bool:
    """An embassy follows its State's recommendations; a ministry those assigned to it."""
    if not recipient.builtin_routing:
        return False
    if recipient.kind == "embassy":
        return recipient.represents_state in values["recommending_states"]
    if recipient.kind == "ministry":
        return recipient.organisation in values["responsible_bodies"]
    return False


def new_delivery(
    *,
    event_id: str,
    event_type: str,
    kind: str,
    recipient: Recipient,
    channel: str,
    cadence: str,
    context: dict[str, Any],
    now: dt.datetime,
    key: str | None = None,
) -> dict[str, Any]:
    """A delivery row: pending, queued for a digest, deferred, or skipped with its reason."""
    status, reason, when = "pending", None, now
    if recipient.unsubscribed_at is not None and kind not in {"confirm"}:
        status, reason = "skipped", "unsubscribed"
    elif address_for(recipient, channel) is None:
        status, reason = "skipped", f"no address for the {channel} channel"
    elif cadence != "immediate":
        status = "queued"
    else:
        later = deferred_until(recipient, now)
        if later is not None:
            when, reason = later, "deferred by quiet hours"
    return {
        "id": uuid.uuid4().hex,
        "idempotency_key": key or f"{event_id}:{recipient.id}:{channel}",
        "event_id": event_id,
        "event_type": event_type,
        "kind": kind,
        "recipient_id": recipient.id,
        "channel": channel,
        "cadence": cadence,
        "status": status,
        "reason": reason,
        "context": context,
        "attempts": 0,
        "next_attempt_at": when,
        "created_at": now,
    }


async def insert_deliveries(session: AsyncSession, rows: list[dict[str, Any]]) -> int:
    """Insert rows, ignoring any whose idempotency key exists (one message per key)."""
    if not rows:
        return 0
    insert = pg_insert if is_postgres(session.bind) else sqlite_insert
    # executemany with RETURNING: one cached statement, sent as batched VALUES, and the ids of
    # the rows that were new (a conflict returns nothing).
    stmt = (
        insert(Delivery)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(Delivery.id)
    )
    inserted = set((await session.scalars(stmt, rows)).all())
    session.info["deliveries_added"] = True
    skipped = [r["channel"] for r in rows if r["status"] == "skipped" and r["id"] in inserted]
    session.info.setdefault(SKIPPED_KEY, []).extend(skipped)
    return len(inserted)


async def route(session: AsyncSession, envelope: Envelope, now: dt.datetime) -> int:
    """Create the deliveries an event calls for; returns how many were new."""
    if envelope.type not in USER_EVENT_TYPES:
        return 0
    values = facets(envelope.type, envelope.data)
    wanted: dict[tuple[str, str], str] = {}
    recipients: dict[str, Recipient] = {}
    rows = await session.execute(
        select(Subscription, Recipient)
        .join(Recipient, Recipient.id == Subscription.recipient_id)
        .where(Subscription.active.is_(True), Subscription.confirmed.is_(True))
    )
    for subscription, recipient in rows:
        if matches(subscription.filters, values):
            recipients[recipient.id] = recipient
            for channel in subscription.channels:
                key = (recipient.id, channel)
                cadence = subscription.cadence
                if key not in wanted or CADENCE_RANK[cadence] < CADENCE_RANK[wanted[key]]:
                    wanted[key] = cadence
    if envelope.type in BUILTIN_EVENT_TYPES:
        candidates = await session.scalars(
            select(Recipient).where(
                Recipient.builtin_routing.is_(True),
                (
                    (Recipient.kind == "embassy")
                    & Recipient.represents_state.in_(values["recommending_states"] or [""])
                )
                | (
                    (Recipient.kind == "ministry")
                    & Recipient.organisation.in_(values["responsible_bodies"] or [""])
                ),
            )
        )
        for recipient in candidates:
            if builtin_match(recipient, values):
                recipients[recipient.id] = recipient
                for channel in default_channels(recipient):
                    key = (recipient.id, channel)
                    cadence = recipient.builtin_cadence
                    if key not in wanted or CADENCE_RANK[cadence] < CADENCE_RANK[wanted[key]]:
                        wanted[key] = cadence
    context = context_for(envelope)
    kind = kind_of(envelope.type)
    new_rows = [
        new_delivery(
            event_id=envelope.id,
            event_type=envelope.type,
            kind=kind,
            recipient=recipients[recipient_id],
            channel=channel,
            cadence=cadence,
            context=context,
            now=now,
        )
        for (recipient_id, channel), cadence in wanted.items()
    ]
    return await insert_deliveries(session, new_rows)
