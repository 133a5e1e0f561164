"""Use cases on indicators and their measurements."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.assessments import organisation_for
from services.monitoring.models import Evidence, Indicator, Measurement, TrackedRecommendation
from services.monitoring.recommendations import SOURCE, ref
from services.monitoring.schemas import IndicatorIn, MeasurementIn
from shared.auth import Principal
from shared.db import utcnow
from shared.events import IndicatorMeasured, IndicatorSnapshot, MeasurementSnapshot
from shared.http import InvalidValue, NotFound
from shared.outbox import record_event


class IndicatorNotFound(NotFound):
    title = "Indicator not found"


async def load(session: AsyncSession, indicator_id: str) -> Indicator:
    """An indicator, or 404."""
    indicator = await session.get(Indicator, indicator_id)
    if indicator is None:
        raise IndicatorNotFound(f"no indicator with id {indicator_id!r}", field="path.indicator_id")
    return indicator


async def create(session: AsyncSession, rec: TrackedRecommendation, data: IndicatorIn) -> Indicator:
    """Define an indicator for a recommendation."""
    indicator = Indicator(
        id=uuid.uuid4().hex, recommendation_id=rec.id, created_at=utcnow(), **data.model_dump()
    )
    session.add(indicator)
    await session.flush()
    return indicator


async def measure(
    session: AsyncSession, indicator: Indicator, data: MeasurementIn, principal: Principal
) -> Measurement:
    """Record a measurement; its evidence must belong to the same recommendation."""
    if principal.role == "assessor":
        organisation: str | None = organisation_for(principal, data.organisation)
    else:
        organisation = data.organisation or principal.organisation
    if indicator.kind == "quantitative" and data.value is None:
        raise InvalidValue("a quantitative indicator needs a numeric value", field="body.value")
    if indicator.kind == "qualitative" and data.text_value is None:
        raise InvalidValue("a qualitative indicator needs a text_value", field="body.text_value")
    if data.evidence_id is not None:
        evidence = await session.get(Evidence, data.evidence_id)
        if evidence is None or evidence.recommendation_id != indicator.recommendation_id:
            raise InvalidValue(
                f"evidence {data.evidence_id!r} does not belong to this recommendation",
                field="body.evidence_id",
            )
    measurement = Measurement(
        id=uuid.uuid4().hex,
        indicator_id=indicator.id,
        created_at=utcnow(),
        submitted_by=principal.key_id,
        **data.model_dump(exclude={"organisation"}),
        organisation=organisation,
    )
    session.add(measurement)
    await session.flush()
    rec = await session.get(TrackedRecommendation, indicator.recommendation_id)
    assert rec is not None
    record_event(
        session,
        IndicatorMeasured(
            recommendation=ref(rec),
            indicator=IndicatorSnapshot(
                id=indicator.id,
                name=indicator.name,
                kind=indicator.kind,  # type: ignore[arg-type]
                unit=indicator.unit,
                target_value=indicator.target_value,
                target_date=indicator.target_date,
            ),
            measurement=MeasurementSnapshot(
                id=measurement.id,
                value=measurement.value,
                text_value=measurement.text_value,
                measured_on=measurement.measured_on,
                evidence_id=measurement.evidence_id,
            ),
        ),
        source=SOURCE,
        subject=rec.id,
    )
    return measurement
