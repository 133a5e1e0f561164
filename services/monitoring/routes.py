"""HTTP layer of the monitoring service: parse, authorise, call the use case, respond."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import (
    APIRouter,
    BackgroundTasks,
    Depends,
    File,
    Form,
    Path,
    Query,
    Request,
    UploadFile,
    status,
)
from fastapi.responses import FileResponse
from pydantic import ValidationError
from sqlalchemy import select

from services.monitoring import (
    assessments,
    consumers,
    deadlines,
    evidence,
    indicators,
    queries,
    recommendations,
    stats,
)
from services.monitoring.models import Deadline, Indicator, TrackedRecommendation
from services.monitoring.schemas import (
    STATUSES,
    AssessmentIn,
    AssessmentOut,
    ConsolidatedStatus,
    DeadlineIn,
    DeadlineMetIn,
    DeadlineOut,
    DeadlineUpdate,
    EvidenceIn,
    EvidenceOut,
    GroupBy,
    IndicatorIn,
    IndicatorOut,
    MeasurementIn,
    MeasurementOut,
    Stats,
    TimelineEntry,
    VerificationIn,
)
from shared.auth import AUTH_ERRORS, AdminKey, AssessorKey, EditorKey, OptionalKey
from shared.http import InvalidValue, SessionDep, UnsupportedMediaType, problem_responses

router = APIRouter(prefix="/v1")

RecommendationIdPath = Annotated[str, Path(max_length=120, examples=["KHM-2-118.17"])]
NOT_FOUND = problem_responses(recommendations.RecommendationNotTracked)
WRITE_ERRORS = {**AUTH_ERRORS, **problem_responses(InvalidValue)}


async def load_recommendation(
    recommendation_id: RecommendationIdPath, session: SessionDep
) -> TrackedRecommendation:
    """The recommendation in the path, or 404 when the catalog never announced it."""
    return await recommendations.load(session, recommendation_id)


RecommendationDep = Annotated[TrackedRecommendation, Depends(load_recommendation)]


def _assessment_out(a) -> AssessmentOut:
    return AssessmentOut.model_validate(a, from_attributes=True)


@router.get(
    "/recommendations/{recommendation_id}/status",
    tags=["status"],
    summary="Consolidated status: latest per assessor type side by side, and disagreement",
    responses=NOT_FOUND,
)
async def consolidated_status(rec: RecommendationDep, session: SessionDep) -> ConsolidatedStatus:
    return recommendations.consolidate(rec, await queries.assessments_for(session, rec.id))


@router.get(
    "/recommendations/{recommendation_id}/timeline",
    tags=["status"],
    summary="Everything that happened to a recommendation, by date",
    responses=NOT_FOUND,
)
async def timeline(
    rec: RecommendationDep, session: SessionDep, principal: OptionalKey
) -> list[TimelineEntry]:
    return await recommendations.timeline(
        session, rec, show_restricted=lambda e: evidence.can_see(e, principal)
    )


@router.get(
    "/recommendations/{recommendation_id}/assessments",
    tags=["assessments"],
    summary="Every assessment, oldest first (they are never overwritten)",
    responses=NOT_FOUND,
)
async def list_assessments(rec: RecommendationDep, session: SessionDep) -> list[AssessmentOut]:
    return [_assessment_out(a) for a in await queries.assessments_for(session, rec.id)]


@router.post(
    "/recommendations/{recommendation_id}/assessments",
    tags=["assessments"],
    status_code=status.HTTP_201_CREATED,
    summary="Record an assessment (an assessor key writes for its own organisation only)",
    responses={**WRITE_ERRORS, **NOT_FOUND},
)
async def record_assessment(
    principal: AssessorKey, body: AssessmentIn, rec: RecommendationDep, session: SessionDep
) -> AssessmentOut:
    return _assessment_out(await assessments.record(session, rec, body, principal))


@router.get(
    "/recommendations/{recommendation_id}/evidence",
    tags=["evidence"],
    summary="Evidence for a recommendation (restricted items only for those allowed)",
    responses=NOT_FOUND,
)
async def list_evidence(
    rec: RecommendationDep, session: SessionDep, principal: OptionalKey
) -> list[EvidenceOut]:
    return [
        EvidenceOut.model_validate(evidence.out(e, principal))
        for e in await queries.evidence_for(session, rec.id)
        if evidence.can_see(e, principal)
    ]


@router.post(
    "/recommendations/{recommendation_id}/evidence",
    tags=["evidence"],
    status_code=status.HTTP_201_CREATED,
    summary="Add evidence described in JSON (use /evidence/upload to attach a file)",
    responses={**WRITE_ERRORS, **NOT_FOUND},
)
async def add_evidence(
    principal: AssessorKey,
    body: EvidenceIn,
    rec: RecommendationDep,
    session: SessionDep,
    organisation: Annotated[str | None, Query(max_length=200)] = None,
) -> EvidenceOut:
    item = await evidence.add(session, rec, body, principal, organisation=organisation)
    return EvidenceOut.model_validate(evidence.out(item, principal))


@router.post(
    "/recommendations/{recommendation_id}/evidence/upload",
    tags=["evidence"],
    status_code=status.HTTP_201_CREATED,
    summary="Add evidence with a file (multipart form: the fields of EvidenceIn plus file)",
    responses={
        **WRITE_ERRORS,
        **NOT_FOUND,
        **problem_responses(UnsupportedMediaType),
        413: {"description": "The file is too large"},
    },
)
async def upload_evidence(
    request: Request,
    principal: AssessorKey,
    rec: RecommendationDep,
    session: SessionDep,
    file: Annotated[UploadFile, File()],
    kind: Annotated[str, Form()],
    title: Annotated[str, Form()],
    url: Annotated[str | None, Form()] = None,
    published_on: Annotated[str | None, Form()] = None,
    description: Annotated[str | None, Form()] = None,
    visibility: Annotated[str, Form()] = "public",
    reprisal_risk: Annotated[bool, Form()] = False,
    submitter_name: Annotated[str | None, Form()] = None,
    organisation: Annotated[str | None, Form()] = None,
) -> EvidenceOut:
    try:
        data = EvidenceIn.model_validate(
            {
                "kind": kind,
                "title": title,
                "url": url or None,
                "published_on": published_on or None,
                "description": description,
                "visibility": visibility,
                "reprisal_risk": reprisal_risk,
                "submitter_name": submitter_name,
            }
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"])
        raise InvalidValue(f"{field}: {error['msg']}", field=f"body.{field}") from exc
    settings = request.app.state.settings

    async def chunks():
        while chunk := await file.read(64 * 1024):
            yield chunk

    stored = await evidence.store_upload(
        chunks(),
        filename=file.filename or "upload",
        content_type=(file.content_type or "application/octet-stream").split(";")[0].strip(),
        folder=settings.upload_dir,
        max_bytes=settings.max_upload_bytes,
        allowed_types=settings.allowed_upload_types,
    )
    item = await evidence.add(session, rec, data, principal, stored, organisation=organisation)
    return EvidenceOut.model_validate(evidence.out(item, principal))


EVIDENCE_NOT_FOUND = problem_responses(evidence.EvidenceNotFound)


@router.get(
    "/evidence/{evidence_id}",
    tags=["evidence"],
    summary="One evidence item",
    responses=EVIDENCE_NOT_FOUND,
)
async def get_evidence(
    evidence_id: Annotated[str, Path(max_length=32)], session: SessionDep, principal: OptionalKey
) -> EvidenceOut:
    item = await evidence.load(session, evidence_id)
    if not evidence.can_see(item, principal):
        raise evidence.EvidenceNotFound(
            f"no evidence with id {evidence_id!r}", field="path.evidence_id"
        )
    return EvidenceOut.model_validate(evidence.out(item, principal))


@router.get(
    "/evidence/{evidence_id}/file",
    tags=["evidence"],
    summary="Download the evidence's file",
    response_class=FileResponse,
    responses=EVIDENCE_NOT_FOUND,
)
async def get_evidence_file(
    request: Request,
    evidence_id: Annotated[str, Path(max_length=32)],
    session: SessionDep,
    principal: OptionalKey,
) -> FileResponse:
    item = await evidence.load(session, evidence_id)
    path = evidence.file_path(request.app.state.settings.upload_dir, item)
    if not evidence.can_see(item, principal) or path is None or not path.exists():
        raise evidence.EvidenceNotFound(
            f"no file for evidence {evidence_id!r}", field="path.evidence_id"
        )
    return FileResponse(
        path,
        media_type=item.file_type,
        filename=item.file_name,
        headers={"X-Content-Type-Options": "nosniff"},
    )


@router.post(
    "/evidence/{evidence_id}/verification",
    tags=["evidence"],
    summary="Verify or dispute evidence (editor)",
    responses={**WRITE_ERRORS, **EVIDENCE_NOT_FOUND},
)
async def verify_evidence(
    principal: EditorKey,
    evidence_id: Annotated[str, Path(max_length=32)],
    body: VerificationIn,
    session: SessionDep,
) -> EvidenceOut:
    item = await evidence.verify(
        session, await evidence.load(session, evidence_id), body, principal
    )
    return EvidenceOut.model_validate(evidence.out(item, principal))


def _indicator_out(indicator: Indicator, measurements: list) -> IndicatorOut:
    return IndicatorOut.model_validate(
        {
            **{c.key: getattr(indicator, c.key) for c in Indicator.__table__.columns},
            "measurements": [
                MeasurementOut.model_validate(m, from_attributes=True) for m in measurements
            ],
        }
    )


@router.get(
    "/recommendations/{recommendation_id}/indicators",
    tags=["indicators"],
    summary="Indicators with their measurements",
    responses=NOT_FOUND,
)
async def list_indicators(rec: RecommendationDep, session: SessionDep) -> list[IndicatorOut]:
    return [_indicator_out(i, ms) for i, ms in await queries.indicators_for(session, rec.id)]


@router.post(
    "/recommendations/{recommendation_id}/indicators",
    tags=["indicators"],
    status_code=status.HTTP_201_CREATED,
    summary="Define an indicator",
    responses={**WRITE_ERRORS, **NOT_FOUND},
)
async def create_indicator(
    _: AssessorKey, body: IndicatorIn, rec: RecommendationDep, session: SessionDep
) -> IndicatorOut:
    return _indicator_out(await indicators.create(session, rec, body), [])


INDICATOR_NOT_FOUND = problem_responses(indicators.IndicatorNotFound)


@router.get(
    "/indicators/{indicator_id}",
    tags=["indicators"],
    summary="One indicator",
    responses=INDICATOR_NOT_FOUND,
)
async def get_indicator(
    indicator_id: Annotated[str, Path(max_length=32)], session: SessionDep
) -> IndicatorOut:
    indicator = await indicators.load(session, indicator_id)
    measured = await queries.measurements_for(session, [indicator.id])
    return _indicator_out(indicator, measured.get(indicator.id, []))


@router.post(
    "/indicators/{indicator_id}/measurements",
    tags=["indicators"],
    status_code=status.HTTP_201_CREATED,
    summary="Record a measurement",
    responses={**WRITE_ERRORS, **INDICATOR_NOT_FOUND},
)
async def record_measurement(
    principal: AssessorKey,
    indicator_id: Annotated[str, Path(max_length=32)],
    body: MeasurementIn,
    session: SessionDep,
) -> MeasurementOut:
    indicator = await indicators.load(session, indicator_id)
    measurement = await indicators.measure(session, indicator, body, principal)
    return MeasurementOut.model_validate(measurement, from_attributes=True)


def _deadline_out(d: Deadline) -> DeadlineOut:
    return DeadlineOut.model_validate(
        {
            **{c.key: getattr(d, c.key) for c in Deadline.__table__.columns},
            "overdue": d.met_on is None and d.due_on < dt.date.today(),
        }
    )


DEADLINE_NOT_FOUND = problem_responses(deadlines.DeadlineNotFound)


@router.get("/deadlines", tags=["deadlines"], summary="Deadlines, soonest first")
async def list_deadlines(
    session: SessionDep,
    state_under_review: Annotated[str | None, Query(min_length=3, max_length=3)] = None,
    cycle: Annotated[int | None, Query(ge=1, le=20)] = None,
    recommendation_id: Annotated[str | None, Query(max_length=120)] = None,
    responsible_body: Annotated[str | None, Query(max_length=200)] = None,
    state: Annotated[str | None, Query(pattern="^(open|met|overdue)$")] = None,
    due_before: dt.date | None = None,
    due_after: dt.date | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[DeadlineOut]:
    rows = await deadlines.listing(
        session,
        state_under_review=state_under_review,
        cycle=cycle,
        recommendation_id=recommendation_id,
        responsible_body=responsible_body,
        state=state,
        due_before=due_before,
        due_after=due_after,
        limit=limit,
    )
    return [_deadline_out(d) for d in rows]


@router.post(
    "/deadlines",
    tags=["deadlines"],
    status_code=status.HTTP_201_CREATED,
    summary="Set a reporting deadline (editor)",
    responses=WRITE_ERRORS,
)
async def create_deadline(_: EditorKey, body: DeadlineIn, session: SessionDep) -> DeadlineOut:
    return _deadline_out(await deadlines.create(session, body))


@router.patch(
    "/deadlines/{deadline_id}",
    tags=["deadlines"],
    summary="Edit a deadline, e.g. a milestone of the review calendar (editor)",
    responses={
        **WRITE_ERRORS,
        **DEADLINE_NOT_FOUND,
        **problem_responses(deadlines.DeadlineAlreadyMet),
    },
)
async def update_deadline(
    _: EditorKey,
    deadline_id: Annotated[str, Path(max_length=32)],
    body: DeadlineUpdate,
    session: SessionDep,
) -> DeadlineOut:
    deadline = await deadlines.load(session, deadline_id)
    return _deadline_out(await deadlines.update(session, deadline, body))


@router.post(
    "/deadlines/{deadline_id}/met",
    tags=["deadlines"],
    summary="Mark a deadline met (a recurring one gets its next occurrence)",
    responses={
        **WRITE_ERRORS,
        **DEADLINE_NOT_FOUND,
        **problem_responses(deadlines.DeadlineAlreadyMet, deadlines.NotYourDeadline),
    },
)
async def deadline_met(
    principal: AssessorKey,
    deadline_id: Annotated[str, Path(max_length=32)],
    body: DeadlineMetIn,
    session: SessionDep,
) -> DeadlineOut:
    deadline = await deadlines.load(session, deadline_id)
    deadlines.ensure_may_report(principal, deadline)
    met, _following = await deadlines.mark_met(session, deadline, body)
    return _deadline_out(met)


@router.get(
    "/reviews/{state_under_review}/{cycle}/calendar",
    tags=["deadlines"],
    summary="The UPR calendar of a review (derived from its review date, editable)",
)
async def review_calendar(
    state_under_review: Annotated[str, Path(min_length=3, max_length=3)],
    cycle: Annotated[int, Path(ge=1, le=20)],
    session: SessionDep,
) -> list[DeadlineOut]:
    rows = await session.scalars(
        select(Deadline)
        .where(
            Deadline.state_under_review == state_under_review.upper(),
            Deadline.cycle == cycle,
            Deadline.recommendation_id.is_(None),
        )
        .order_by(Deadline.due_on)
    )
    return [_deadline_out(d) for d in rows]


@router.get(
    "/stats",
    tags=["statistics"],
    summary="Counts per status and the share that triggered action, per group",
    description=(
        "A recommendation triggered action when its consolidated status is partially or fully "
        "implemented. Recommendations without assessments count as no_data."
    ),
    responses=problem_responses(InvalidValue),
)
async def get_stats(
    session: SessionDep,
    group_by: GroupBy = "issue",
    state_under_review: Annotated[list[str], Query()] = [],  # noqa: B006
    cycle: Annotated[list[int], Query()] = [],  # noqa: B006
    response: Annotated[list[str], Query()] = [],  # noqa: B006
    issue: Annotated[list[str], Query()] = [],  # noqa: B006
    recommending_state: Annotated[list[str], Query()] = [],  # noqa: B006
    responsible_body: Annotated[list[str], Query()] = [],  # noqa: B006
) -> Stats:
    for value in response:
        if value not in {"supported", "supported_in_part", "noted", "pending"}:
            raise InvalidValue(f"unknown response {value!r}", field="query.response")
    conditions = queries.stats_filters(
        state_under_review=[s.upper() for s in state_under_review],
        cycle=cycle,
        response=response,
        issue=issue,
        recommending_state=[s.upper() for s in recommending_state],
        responsible_body=responsible_body,
    )
    return await stats.compute(session, group_by, conditions)


@router.get("/statuses", tags=["statistics"], summary="The implementation statuses")
async def list_statuses() -> list[str]:
    return list(STATUSES)


@router.post(
    "/admin/read-model/rebuild",
    tags=["admin"],
    status_code=status.HTTP_202_ACCEPTED,
    summary="Rebuild the recommendation read model from the catalog's event stream",
    responses=AUTH_ERRORS,
)
async def rebuild_read_model(
    request: Request, _: AdminKey, session: SessionDep, background: BackgroundTasks
) -> dict[str, str]:
    await consumers.reset_read_model(session)
    # Replays once the reset has committed (the session commits before the response).
    background.add_task(request.app.state.catalog_consumer.replay)
    return {"status": "rebuilding"}
