"""Use case: gather a recipient's queued deliveries into one message per period."""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.notifications.models import Delivery, Recipient
from services.notifications.routing import insert_deliveries, new_delivery
from shared.db import is_postgres


def period_end(created: dt.datetime, cadence: str, timezone: str, hour: int) -> dt.datetime:
    """When the digest holding an item goes out (local digest hour; weeklies on Monday)."""
    zone = zoneinfo.ZoneInfo(timezone)
    local = created.astimezone(zone)
    end = dt.datetime.combine(local.date(), dt.time(hour), tzinfo=zone)
    if end <= local:
        end += dt.timedelta(days=1)
    if cadence == "weekly":
        end += dt.timedelta(days=(7 - end.weekday()) % 7)
    return end.astimezone(dt.UTC)


def _summary(item: Delivery) -> dict[str, Any]:
    rec = item.context.get("recommendation") or {}
    data = item.context.get("data") or {}
    detail = data.get("status") or (data.get("deadline") or {}).get("title") or ""
    return {
        "kind": item.kind,
        "number": rec.get("number"),
        "recommendation_id": rec.get("id"),
        "summary": " ".join(str(p) for p in (rec.get("number") or "", item.kind, detail) if p),
        "status": data.get("status"),
    }


async def send_due(session: AsyncSession, now: dt.datetime, hour: int, limit: int = 5000) -> int:
    """Create the digests whose period has ended; returns how many were created."""
    stmt = (
        select(Delivery, Recipient)
        .join(Recipient, Recipient.id == Delivery.recipient_id)
        .where(Delivery.status == "queued")
        .order_by(Delivery.created_at)
        .limit(limit)
    )
    if is_postgres(session.bind):
        stmt = stmt.with_for_update(skip_locked=True, of=Delivery)
    groups: dict[tuple[str, str, str], list[Delivery]] = {}
    recipients: dict[str, Recipient] = {}
    for item, recipient in await session.execute(stmt):
        groups.setdefault((recipient.id, item.channel, item.cadence), []).append(item)
        recipients[recipient.id] = recipient
    created = 0
    for (recipient_id, channel, cadence), items in groups.items():
        recipient = recipients[recipient_id]
        end = period_end(items[0].created_at, cadence, recipient.timezone, hour)
        if now < end:
            continue
        key = f"digest:{recipient_id}:{channel}:{cadence}:{end.isoformat()}"
        digest_id = uuid.uuid5(uuid.NAMESPACE_URL, key).hex
        row = new_delivery(
            event_id=digest_id,
            event_type="upr.notifications.digest",
            kind="digest",
            recipient=recipient,
            channel=channel,
            cadence="immediate",
            context={
                "event": {
                    "id": digest_id,
                    "type": "upr.notifications.digest",
                    "time": now.isoformat(),
                },
                "recommendation": None,
                "data": {"period": cadence, "items": [_summary(i) for i in items]},
            },
            now=now,
            key=key,
        )
        await insert_deliveries(session, [row])
        await session.execute(
            update(Delivery)
            .where(Delivery.id.in_([i.id for i in items]))
            .values(status="digested", digest_id=row["id"])
        )
        created += 1
    return created
