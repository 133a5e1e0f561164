"""HTTP layer of the catalog: parse, authorise, call the use case, respond."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, status
from fastapi.responses import StreamingResponse

from services.catalog import exports, formats, imports, queries, recommendations
from services.catalog.countries import UnknownCountry, resolve_country
from services.catalog.models import Recommendation
from services.catalog.schemas import (
    AssignmentIn,
    ExportFormat,
    FacetCounts,
    ImportFormat,
    ImportReport,
    PriorityIn,
    RecommendationCreate,
    RecommendationOut,
    RecommendationPage,
    RecommendationSummary,
    RecommendationUpdate,
    ResponseIn,
    SimilarRecommendation,
)
from services.catalog.vocabulary import ACTION_CATEGORIES, ISSUES, UnknownIssue, normalise_issue
from shared.auth import AUTH_ERRORS, EditorKey
from shared.http import InvalidValue, NotFound, SessionDep, UnsupportedMediaType, problem_responses

router = APIRouter(prefix="/v1")

RESPONSE_FILTER_VALUES = {
    "supported": "supported",
    "accepted": "supported",
    "supported_in_part": "supported_in_part",
    "noted": "noted",
    "rejected": "noted",
    "pending": "pending",
}


async def recommendation_filter(
    session: SessionDep,
    mechanism: Annotated[list[str], Query(description="upr, treaty_body, special_procedure")] = [],  # noqa: B006 - FastAPI reads list defaults without sharing them
    state_under_review: Annotated[list[str], Query(description="ISO3 or name")] = [],  # noqa: B006
    cycle: Annotated[list[Annotated[int, Query(ge=1, le=20)]], Query()] = [],  # noqa: B006
    recommending_state: Annotated[list[str], Query(description="ISO3 or name")] = [],  # noqa: B006
    response: Annotated[
        list[str], Query(description="supported (or accepted), supported_in_part, noted, pending")
    ] = [],  # noqa: B006
    issue: Annotated[list[str], Query(description="UPR Info issue label")] = [],  # noqa: B006
    action_category: Annotated[list[Annotated[int, Query(ge=1, le=5)]], Query()] = [],  # noqa: B006
    responsible_body: Annotated[list[str], Query(max_length=200)] = [],  # noqa: B006
    priority: Annotated[list[str], Query(description="short, medium, long")] = [],  # noqa: B006
    cluster: Annotated[str | None, Query(max_length=120)] = None,
    q: Annotated[str | None, Query(min_length=1, max_length=200, description="Full text")] = None,
) -> queries.RecommendationFilter:
    """The validated filters; an unknown value is a 422 naming it, never an empty result."""

    def check(values: list[str], name: str, allowed_values: set[str] | dict[str, str]) -> list[str]:
        out = []
        for value in values:
            key = value.strip().lower()
            if key not in allowed_values:
                expected = ", ".join(sorted(set(allowed_values)))
                raise InvalidValue(
                    f"unknown {name} {value!r}; expected one of {expected}",
                    field=f"query.{name}",
                )
            out.append(allowed_values[key] if isinstance(allowed_values, dict) else key)
        return out

    def countries(values: list[str], name: str) -> list[str]:
        try:
            return [resolve_country(v).iso3 for v in values]
        except UnknownCountry as exc:
            raise InvalidValue(str(exc), field=f"query.{name}") from exc

    try:
        issues = [normalise_issue(v) for v in issue]
    except UnknownIssue as exc:
        raise InvalidValue(str(exc), field="query.issue") from exc
    if responsible_body:
        known = await queries.known_body_names(session, responsible_body)
        unknown = [b for b in responsible_body if b not in known]
        if unknown:
            raise InvalidValue(
                f"unknown responsible body {unknown[0]!r}", field="query.responsible_body"
            )
    return queries.RecommendationFilter(
        mechanism=check(mechanism, "mechanism", {"upr", "treaty_body", "special_procedure"}),
        state_under_review=countries(state_under_review, "state_under_review"),
        cycle=cycle,
        recommending_state=countries(recommending_state, "recommending_state"),
        response=check(response, "response", RESPONSE_FILTER_VALUES),
        issue=issues,
        action_category=action_category,
        responsible_body=responsible_body,
        priority=check(priority, "priority", {"short", "medium", "long"}),
        cluster=cluster,
        q=q,
    )


FilterDep = Annotated[queries.RecommendationFilter, Depends(recommendation_filter)]
RecommendationIdPath = Annotated[
    str, Path(max_length=120, description="e.g. KHM-2-118.17", examples=["KHM-2-118.17"])
]
NOT_FOUND = problem_responses(recommendations.RecommendationNotFound)


async def load_recommendation(
    recommendation_id: RecommendationIdPath, session: SessionDep
) -> Recommendation:
    """The recommendation named in the path, fully loaded, or 404."""
    return await recommendations.load(session, recommendation_id)


RecommendationDep = Annotated[Recommendation, Depends(load_recommendation)]


@router.get(
    "/recommendations",
    tags=["recommendations"],
    summary="List, filter and search recommendations",
    responses=problem_responses(InvalidValue),
)
async def list_recommendations(
    session: SessionDep,
    filters: FilterDep,
    sort: Annotated[
        str,
        Query(
            pattern=r"^-?(number|updated_at|id)$",
            description="number (natural order), updated_at or id; prefix - for descending",
        ),
    ] = "number",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    exact_total: Annotated[
        bool,
        Query(
            description="Count every match: `total` is then always exact (slower when more "
            f"than {queries.TOTAL_CAP:,} match)"
        ),
    ] = False,
) -> RecommendationPage:
    try:
        position = queries.decode_cursor(cursor) if cursor else None
    except ValueError as exc:
        raise InvalidValue(str(exc), field="query.cursor") from exc
    page = await queries.list_page(
        session, filters, sort=sort, limit=limit, cursor=position, exact_total=exact_total
    )
    return RecommendationPage(
        items=[
            RecommendationSummary.model_validate(recommendations.summary(r)) for r in page.items
        ],
        total=page.total,
        total_exact=page.total_exact,
        next_cursor=page.next_cursor,
    )


@router.get(
    "/recommendations/facets",
    tags=["recommendations"],
    summary="Counts per facet value for the same filters",
    responses=problem_responses(InvalidValue),
)
async def facets(session: SessionDep, filters: FilterDep) -> FacetCounts:
    total, counts = await queries.facet_counts(session, filters)
    return FacetCounts(total=total, facets=counts)


MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "ndjson": "application/x-ndjson",
}


@router.get(
    "/recommendations/export",
    tags=["recommendations"],
    summary="Stream every matching recommendation as CSV, JSON or NDJSON",
    response_class=StreamingResponse,
    responses={
        200: {"content": {m: {} for m in MEDIA_TYPES.values()}},
        **problem_responses(InvalidValue),
    },
)
async def export(
    request: Request,
    filters: FilterDep,
    format: Annotated[ExportFormat, Query()] = "csv",
) -> StreamingResponse:
    factory = request.app.state.session_factory

    async def body() -> AsyncIterator[str]:
        async with factory() as session:
            first = True
            if format == "csv":
                yield exports.csv_header()
            elif format == "json":
                yield "["
            async for batch in queries.iter_full(session, filters):
                chunk = []
                for rec in batch:
                    snap = recommendations.snapshot(rec)
                    if format == "csv":
                        chunk.append(exports.csv_row(snap))
                    elif format == "json":
                        chunk.append(("" if first else ",") + json.dumps(snap, ensure_ascii=False))
                        first = False
                    else:
                        chunk.append(json.dumps(snap, ensure_ascii=False) + "\n")
                yield "".join(chunk)
            if format == "json":
                yield "]"

    filename = f"recommendations.{format}"
    return StreamingResponse(
        body(),
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get(
    "/recommendations/{recommendation_id}",
    tags=["recommendations"],
    summary="One recommendation with its response history, bodies and priorities",
    responses=NOT_FOUND,
)
async def get_recommendation(rec: RecommendationDep) -> RecommendationOut:
    return RecommendationOut.model_validate(recommendations.snapshot(rec))


@router.get(
    "/recommendations/{recommendation_id}/similar",
    tags=["recommendations"],
    summary="Recommendations to the same State worded alike (near-duplicates first)",
    responses=NOT_FOUND,
)
async def similar(
    rec: RecommendationDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    threshold: Annotated[float, Query(ge=0.05, le=1.0)] = 0.3,
) -> list[SimilarRecommendation]:
    found = await recommendations.similar(session, rec, limit=limit, threshold=threshold)
    return [
        SimilarRecommendation(
            id=row[0],
            number=row[1],
            text=row[2],
            recommending_states=[recommendations._country_ref(c) for c in row[3]],
            similarity=score,
        )
        for row, score in found
    ]


WRITE_ERRORS = {**AUTH_ERRORS, **problem_responses(InvalidValue)}


@router.post(
    "/recommendations",
    tags=["recommendations"],
    status_code=status.HTTP_201_CREATED,
    summary="Create a recommendation",
    responses={**WRITE_ERRORS, **problem_responses(recommendations.RecommendationExists)},
)
async def create_recommendation(
    _: EditorKey, body: RecommendationCreate, session: SessionDep
) -> RecommendationOut:
    rec = await recommendations.create(session, body)
    return RecommendationOut.model_validate(recommendations.snapshot(rec))


@router.patch(
    "/recommendations/{recommendation_id}",
    tags=["recommendations"],
    summary="Change a recommendation's descriptive fields",
    responses={**WRITE_ERRORS, **NOT_FOUND},
)
async def update_recommendation(
    _: EditorKey, body: RecommendationUpdate, rec: RecommendationDep, session: SessionDep
) -> RecommendationOut:
    rec, _changed = await recommendations.update(session, rec, body)
    return RecommendationOut.model_validate(recommendations.snapshot(rec))


@router.post(
    "/recommendations/{recommendation_id}/responses",
    tags=["recommendations"],
    status_code=status.HTTP_201_CREATED,
    summary="Append a response (the latest is the current response)",
    responses={**WRITE_ERRORS, **NOT_FOUND},
)
async def append_response(
    _: EditorKey, body: ResponseIn, rec: RecommendationDep, session: SessionDep
) -> RecommendationOut:
    rec = await recommendations.append_response(session, rec, body)
    return RecommendationOut.model_validate(recommendations.snapshot(rec))


@router.put(
    "/recommendations/{recommendation_id}/responsible-bodies",
    tags=["recommendations"],
    summary="Assign the responsible bodies (replaces the set)",
    responses={**WRITE_ERRORS, **NOT_FOUND},
)
async def assign(
    _: EditorKey, body: AssignmentIn, rec: RecommendationDep, session: SessionDep
) -> RecommendationOut:
    rec = await recommendations.assign(session, rec, body)
    return RecommendationOut.model_validate(recommendations.snapshot(rec))


@router.put(
    "/recommendations/{recommendation_id}/priorities",
    tags=["recommendations"],
    summary="Set the priority a named group gives this recommendation",
    responses={**WRITE_ERRORS, **NOT_FOUND},
)
async def prioritise(
    _: EditorKey, body: PriorityIn, rec: RecommendationDep, session: SessionDep
) -> RecommendationOut:
    rec = await recommendations.prioritise(session, rec, body)
    return RecommendationOut.model_validate(recommendations.snapshot(rec))


def _reader(
    fmt: str,
    text: str,
    *,
    state_under_review: str | None,
    cycle: int | None,
    session: int | None,
    review_date: date | None,
    document: str | None,
):
    if fmt == "upr-info-csv":
        return formats.read_upr_info_csv(text)
    if fmt == "positions-csv":
        return formats.read_positions_csv(text)
    if fmt == "csv":
        return exports.read_csv(text)
    if fmt == "json":
        return exports.read_json(text)
    if state_under_review is None or cycle is None:
        missing = "state_under_review" if state_under_review is None else "cycle"
        raise InvalidValue(f"report-text imports need {missing}", field=f"query.{missing}")
    try:
        sur = resolve_country(state_under_review).iso3
    except UnknownCountry as exc:
        raise InvalidValue(str(exc), field="query.state_under_review") from exc
    return formats.read_report_text(
        text,
        state_under_review=sur,
        cycle=cycle,
        session=session,
        review_date=review_date,
        document=document,
    )


@router.post(
    "/imports",
    tags=["imports"],
    summary="Import recommendations from a file sent as the request body",
    description=(
        "Idempotent: a re-import updates changed recommendations and leaves the rest alone. "
        "Each row is validated; the report lists created, updated, unchanged and rejected "
        "rows (with line and reason). With atomic=true one bad row rejects the whole file."
    ),
    responses={
        **AUTH_ERRORS,
        **problem_responses(imports.ImportRejected, UnsupportedMediaType),
        413: {"description": "The file is larger than UPR_MAX_BODY_BYTES"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string", "format": "binary"}},
                "text/plain": {"schema": {"type": "string", "format": "binary"}},
                "application/json": {"schema": {"type": "string", "format": "binary"}},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
async def import_file(
    request: Request,
    _: EditorKey,
    session: SessionDep,
    format: Annotated[ImportFormat, Query()],
    atomic: Annotated[bool, Query(description="All-or-nothing")] = False,
    state_under_review: Annotated[str | None, Query(max_length=120)] = None,
    cycle: Annotated[int | None, Query(ge=1, le=20)] = None,
    session_number: Annotated[int | None, Query(alias="session", ge=1, le=200)] = None,
    review_date: Annotated[date | None, Query()] = None,
    document: Annotated[str | None, Query(max_length=80)] = None,
    filename: Annotated[str | None, Query(max_length=300)] = None,
) -> ImportReport:
    data = await request.body()
    if not data:
        raise InvalidValue("the request body is empty; send the file as the body", field="body")
    try:
        text = formats.decode_upload(data)
        reader = _reader(
            format,
            text,
            state_under_review=state_under_review,
            cycle=cycle,
            session=session_number,
            review_date=review_date,
            document=document,
        )
        rows = await asyncio.to_thread(list, reader)
    except formats.FormatError as exc:
        raise InvalidValue(str(exc), field="body") from exc
    return await imports.run_import(session, rows, fmt=format, atomic=atomic, filename=filename)


@router.get(
    "/imports/{import_id}",
    tags=["imports"],
    summary="The report of an earlier import",
    responses=problem_responses(NotFound),
)
async def get_import(
    import_id: Annotated[str, Path(max_length=32)], session: SessionDep
) -> ImportReport:
    run = await imports.get_run(session, import_id)
    if run is None:
        raise NotFound(f"no import with id {import_id!r}", field="path.import_id")
    return ImportReport.model_validate(run.report)


@router.post(
    "/clusters/recompute",
    tags=["recommendations"],
    summary="Group near-duplicate recommendations to a State into clusters",
    description="Sets cluster_id on alike recommendations (word overlap); emits updated events.",
    responses=WRITE_ERRORS,
)
async def recompute_clusters(
    _: EditorKey,
    session: SessionDep,
    state_under_review: Annotated[str, Query(max_length=120)],
    threshold: Annotated[float, Query(ge=0.2, le=1.0)] = 0.6,
) -> dict[str, int]:
    try:
        sur = resolve_country(state_under_review).iso3
    except UnknownCountry as exc:
        raise InvalidValue(str(exc), field="query.state_under_review") from exc
    changed = await recommendations.recompute_clusters(session, sur, threshold=threshold)
    return {"changed": changed}


@router.get("/issues", tags=["vocabularies"], summary="The 54 UPR Info issue labels")
async def list_issues() -> list[str]:
    return list(ISSUES)


@router.get(
    "/action-categories", tags=["vocabularies"], summary="McMahon's action categories 1 to 5"
)
async def list_action_categories() -> dict[int, str]:
    return ACTION_CATEGORIES
