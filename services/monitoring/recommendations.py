"""Use cases on tracked recommendations: load, describe for events, consolidate, timeline."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring import queries
from services.monitoring.models import Assessment, TrackedRecommendation
from services.monitoring.schemas import AssessorView, ConsolidatedStatus, TimelineEntry
from shared.events import RecommendationRef
from shared.http import NotFound

SOURCE = "upr/monitoring"
CIVIL_SOCIETY = ("ngo", "nhri")


class RecommendationNotTracked(NotFound):
    title = "Recommendation not found"


async def load(session: AsyncSession, recommendation_id: str) -> TrackedRecommendation:
    """The tracked recommendation, or 404 when the catalog never announced it."""
    rec = await session.get(TrackedRecommendation, recommendation_id)
    if rec is None:
        raise RecommendationNotTracked(
            f"no recommendation with id {recommendation_id!r} (the catalog has not announced it)",
            field="path.recommendation_id",
        )
    return rec


def ref(rec: TrackedRecommendation) -> RecommendationRef:
    """What events carry about the recommendation."""
    return RecommendationRef.model_validate(
        {
            "id": rec.id,
            "number": rec.number,
            "text": rec.text,
            "state_under_review": rec.state_under_review,
            "cycle": rec.cycle,
            "response": rec.response,
            "recommending_states": rec.recommending_states,
            "issues": rec.issues,
            "responsible_bodies": rec.responsible_bodies,
        }
    )


def _view(a: Assessment) -> AssessorView:
    return AssessorView(
        status=a.status,
        dimension=a.dimension,
        organisation=a.organisation,
        assessed_on=a.assessed_on,
        assessment_id=a.id,
    )


def consolidate(rec: TrackedRecommendation, assessments: list[Assessment]) -> ConsolidatedStatus:
    """The latest status per assessor type and per dimension, and whether they disagree."""
    by_type: dict[str, Assessment] = {}
    by_dimension: dict[str, Assessment] = {}
    for a in assessments:  # oldest first, so later ones win
        by_type[a.assessor_type] = a
        by_dimension[a.dimension] = a
    government = by_type.get("government")
    disagreement = government is not None and any(
        t in by_type and by_type[t].status != government.status for t in CIVIL_SOCIETY
    )
    return ConsolidatedStatus(
        recommendation_id=rec.id,
        status=rec.status,
        by_assessor_type={t: _view(a) for t, a in by_type.items()},
        by_dimension={d: _view(a) for d, a in by_dimension.items()},
        disagreement=disagreement,
        assessments=len(assessments),
    )


async def timeline(
    session: AsyncSession, rec: TrackedRecommendation, *, show_restricted: Any
) -> list[TimelineEntry]:
    """Assessments, evidence, measurements and deadlines of a recommendation, by date."""
    entries: list[TimelineEntry] = []
    for a in await queries.assessments_for(session, rec.id):
        entries.append(
            TimelineEntry(
                date=a.assessed_on,
                kind="assessment",
                id=a.id,
                summary=f"{a.organisation} ({a.assessor_type}): {a.status} ({a.dimension})",
                details={"status": a.status, "summary": a.summary, "evidence_ids": a.evidence_ids},
            )
        )
    for e in await queries.evidence_for(session, rec.id):
        if not show_restricted(e):
            continue
        entries.append(
            TimelineEntry(
                date=e.published_on or e.created_at.date(),
                kind="evidence",
                id=e.id,
                summary=f"{e.kind}: {e.title}",
                details={"url": e.url, "verification": e.verification_status},
            )
        )
        if e.verified_at is not None:
            entries.append(
                TimelineEntry(
                    date=e.verified_at.date(),
                    kind="verification",
                    id=e.id,
                    summary=f"evidence {e.verification_status}: {e.title}",
                    details={"reason": e.verification_reason},
                )
            )
    for indicator, measurements in await queries.indicators_for(session, rec.id):
        for m in measurements:
            value = m.text_value if m.value is None else f"{m.value:g} {indicator.unit or ''}"
            entries.append(
                TimelineEntry(
                    date=m.measured_on,
                    kind="measurement",
                    id=m.id,
                    summary=f"{indicator.name}: {value.strip()}",
                    details={"indicator_id": indicator.id, "evidence_id": m.evidence_id},
                )
            )
    for d in await queries.deadlines_for(session, rec.id):
        entries.append(
            TimelineEntry(
                date=d.met_on or d.due_on,
                kind="deadline",
                id=d.id,
                summary=f"{d.title}: {'met' if d.met_on else 'due'}",
                details={
                    "due_on": d.due_on.isoformat(),
                    "met_on": d.met_on and d.met_on.isoformat(),
                },
            )
        )
    entries.sort(key=lambda e: (e.date, e.kind))
    return entries
