"""Use case: record an assessment; the consolidated status follows, with its events."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring import queries
from services.monitoring.models import Assessment, TrackedRecommendation
from services.monitoring.recommendations import SOURCE, ref
from services.monitoring.schemas import AssessmentIn
from shared.auth import Principal
from shared.db import utcnow
from shared.events import AssessmentRecorded, AssessmentSnapshot, StatusChanged
from shared.http import Forbidden, InvalidValue
from shared.outbox import record_event


class NotYourOrganisation(Forbidden):
    title = "Not your organisation"


def organisation_for(principal: Principal, requested: str | None) -> str:
    """The organisation an assessment or evidence is written for; assessors only their own."""
    if principal.role == "assessor":
        if principal.organisation is None:
            raise NotYourOrganisation("this assessor key has no organisation; ask an admin")
        if requested is not None and requested != principal.organisation:
            raise NotYourOrganisation(
                f"this key writes for {principal.organisation!r}, not {requested!r}",
                field="body.organisation",
            )
        return principal.organisation
    organisation = requested or principal.organisation
    if organisation is None:
        raise InvalidValue(
            "name the organisation this assessment is from", field="body.organisation"
        )
    return organisation


def snapshot(a: Assessment) -> AssessmentSnapshot:
    """The assessment as events carry it."""
    return AssessmentSnapshot(
        id=a.id,
        organisation=a.organisation,
        assessor_type=a.assessor_type,
        status=a.status,
        dimension=a.dimension,
        assessed_on=a.assessed_on,
        summary=a.summary,
        evidence_ids=a.evidence_ids,
    )


async def record(
    session: AsyncSession, rec: TrackedRecommendation, data: AssessmentIn, principal: Principal
) -> Assessment:
    """Append an assessment; emit assessment.recorded, and status.changed when it moves."""
    organisation = organisation_for(principal, data.organisation)
    if (
        principal.role == "assessor"
        and principal.organisation_type is not None
        and data.assessor_type != principal.organisation_type
    ):
        # Otherwise an NGO's key could speak as the government and fake a disagreement.
        raise NotYourOrganisation(
            f"this key speaks for a {principal.organisation_type!r} organisation, "
            f"not a {data.assessor_type!r} one",
            field="body.assessor_type",
        )
    evidence_ids = list(dict.fromkeys(data.evidence_ids))
    known = await queries.evidence_ids_of(session, rec.id, evidence_ids)
    unknown = [e for e in evidence_ids if e not in known]
    if unknown:
        raise InvalidValue(
            f"evidence {unknown[0]!r} does not belong to {rec.id}", field="body.evidence_ids"
        )
    assessment = Assessment(
        id=uuid.uuid4().hex,
        recommendation_id=rec.id,
        organisation=organisation,
        assessor_type=data.assessor_type,
        status=data.status,
        dimension=data.dimension,
        assessed_on=data.assessed_on,
        summary=data.summary,
        evidence_ids=evidence_ids,
        submitted_by=principal.key_id,
        created_at=utcnow(),
    )
    session.add(assessment)
    await session.flush()
    latest = await queries.latest_assessment(session, rec.id)
    previous = rec.status
    record_event(
        session,
        AssessmentRecorded(recommendation=ref(rec), assessment=snapshot(assessment)),
        source=SOURCE,
        subject=rec.id,
    )
    if latest is not None and latest.status != previous:
        rec.status = latest.status
        rec.status_changed_at = utcnow()
        record_event(
            session,
            StatusChanged(
                recommendation=ref(rec),
                previous_status=previous,
                status=latest.status,
                organisation=latest.organisation,
                assessor_type=latest.assessor_type,
                reason=latest.summary,
                assessment_id=latest.id,
            ),
            source=SOURCE,
            subject=rec.id,
        )
    return assessment
