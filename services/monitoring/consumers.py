"""Catalog events build the monitoring read model (idempotent, newest version wins)."""

from __future__ import annotations

import logging

from pydantic import ValidationError
from sqlalchemy import delete, insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring import deadlines
from services.monitoring.models import (
    TrackedBody,
    TrackedIssue,
    TrackedRecommendation,
    TrackedRecommendingState,
)
from shared.bus import PermanentEventError
from shared.events import Envelope, RecommendationEvent, UnknownEventType
from shared.inbox import ProcessedEvent

log = logging.getLogger(__name__)

CATALOG_CONSUMER = "monitoring-catalog"
CATALOG_EVENTS = (
    "upr.catalog.recommendation.created",
    "upr.catalog.recommendation.updated",
    "upr.catalog.recommendation.response_changed",
    "upr.catalog.recommendation.assigned",
    "upr.catalog.recommendation.prioritised",
)


async def apply_catalog_event(session: AsyncSession, envelope: Envelope) -> None:
    """Upsert the recommendation an event describes, unless we hold a newer version."""
    try:
        payload = envelope.payload()
    except (ValidationError, UnknownEventType) as exc:
        raise PermanentEventError(f"cannot read {envelope.type}: {exc}") from exc
    if not isinstance(payload, RecommendationEvent):
        raise PermanentEventError(f"{envelope.type} is not a recommendation event")
    snap = payload.recommendation
    row = await session.get(TrackedRecommendation, snap.id)
    if row is not None and row.catalog_version >= snap.version:
        return
    values = {
        "number": snap.number,
        "text": snap.text,
        "mechanism": snap.mechanism,
        "state_under_review": snap.state_under_review.iso3,
        "cycle": snap.cycle,
        "review_date": snap.review_date,
        "response": snap.response.position if snap.response else None,
        "recommending_states": [c.model_dump() for c in snap.recommending_states],
        "issues": list(snap.issues),
        "responsible_bodies": [b.model_dump() for b in snap.responsible_bodies],
        "catalog_version": snap.version,
    }
    if row is None:
        session.add(TrackedRecommendation(id=snap.id, status="no_data", **values))
        await session.flush()
    else:
        for name, value in values.items():
            setattr(row, name, value)
    for table in (TrackedIssue, TrackedRecommendingState, TrackedBody):
        await session.execute(delete(table).where(table.recommendation_id == snap.id))
    if snap.issues:
        await session.execute(
            insert(TrackedIssue), [{"recommendation_id": snap.id, "issue": i} for i in snap.issues]
        )
    if snap.recommending_states:
        await session.execute(
            insert(TrackedRecommendingState),
            [{"recommendation_id": snap.id, "iso3": c.iso3} for c in snap.recommending_states],
        )
    names = list(dict.fromkeys(b.name for b in snap.responsible_bodies))
    if names:
        await session.execute(
            insert(TrackedBody), [{"recommendation_id": snap.id, "name": n} for n in names]
        )
    if snap.mechanism == "upr" and snap.review_date is not None and snap.cycle is not None:
        await deadlines.ensure_review_calendar(
            session, snap.state_under_review.iso3, snap.cycle, snap.review_date
        )


async def reset_read_model(session: AsyncSession) -> None:
    """Forget which catalog events were applied, so a replay of the stream rebuilds the model."""
    await session.execute(delete(ProcessedEvent).where(ProcessedEvent.consumer == CATALOG_CONSUMER))
    await session.execute(update(TrackedRecommendation).values(catalog_version=0))
