"""Reads of the monitoring tables: read model, assessments, statistics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, case, func, literal, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.models import (
    Assessment,
    Deadline,
    Evidence,
    Indicator,
    Measurement,
    TrackedBody,
    TrackedIssue,
    TrackedRecommendation,
    TrackedRecommendingState,
)
from services.monitoring.schemas import TRIGGERED_ACTION
from shared.db import is_postgres


async def assessments_for(session: AsyncSession, recommendation_id: str) -> list[Assessment]:
    """Every assessment of a recommendation, oldest first."""
    rows = await session.scalars(
        select(Assessment)
        .where(Assessment.recommendation_id == recommendation_id)
        .order_by(Assessment.assessed_on, Assessment.created_at)
    )
    return list(rows)


async def latest_assessment(session: AsyncSession, recommendation_id: str) -> Assessment | None:
    """The most recent assessment (by date assessed, then by when it was recorded)."""
    return await session.scalar(
        select(Assessment)
        .where(Assessment.recommendation_id == recommendation_id)
        .order_by(Assessment.assessed_on.desc(), Assessment.created_at.desc())
        .limit(1)
    )


async def evidence_for(session: AsyncSession, recommendation_id: str) -> list[Evidence]:
    """Every evidence item of a recommendation, oldest first."""
    rows = await session.scalars(
        select(Evidence)
        .where(Evidence.recommendation_id == recommendation_id)
        .order_by(Evidence.created_at)
    )
    return list(rows)


async def evidence_ids_of(
    session: AsyncSession, recommendation_id: str, ids: Sequence[str]
) -> set[str]:
    """Which of these evidence ids belong to the recommendation."""
    if not ids:
        return set()
    rows = await session.scalars(
        select(Evidence.id).where(
            Evidence.recommendation_id == recommendation_id, Evidence.id.in_(ids)
        )
    )
    return set(rows)


async def indicators_for(
    session: AsyncSession, recommendation_id: str
) -> list[tuple[Indicator, list[Measurement]]]:
    """Indicators of a recommendation with their measurements (two queries, no N+1)."""
    indicators = list(
        await session.scalars(
            select(Indicator)
            .where(Indicator.recommendation_id == recommendation_id)
            .order_by(Indicator.created_at)
        )
    )
    measurements = await measurements_for(session, [i.id for i in indicators])
    return [(i, measurements.get(i.id, [])) for i in indicators]


async def measurements_for(
    session: AsyncSession, indicator_ids: Sequence[str]
) -> dict[str, list[Measurement]]:
    """Measurements of these indicators, oldest first, keyed by indicator."""
    if not indicator_ids:
        return {}
    rows = await session.scalars(
        select(Measurement)
        .where(Measurement.indicator_id.in_(indicator_ids))
        .order_by(Measurement.measured_on, Measurement.created_at)
    )
    grouped: dict[str, list[Measurement]] = {}
    for row in rows:
        grouped.setdefault(row.indicator_id, []).append(row)
    return grouped


async def deadlines_for(session: AsyncSession, recommendation_id: str) -> list[Deadline]:
    """Deadlines attached to a recommendation."""
    rows = await session.scalars(
        select(Deadline)
        .where(Deadline.recommendation_id == recommendation_id)
        .order_by(Deadline.due_on)
    )
    return list(rows)


GROUP_COLUMNS: dict[str, Any] = {
    "response": TrackedRecommendation.response,
    "cycle": TrackedRecommendation.cycle,
    "state_under_review": TrackedRecommendation.state_under_review,
}
GROUP_LINKS: dict[str, tuple[Any, Any]] = {
    "issue": (TrackedIssue, TrackedIssue.issue),
    "recommending_state": (TrackedRecommendingState, TrackedRecommendingState.iso3),
    "responsible_body": (TrackedBody, TrackedBody.name),
}


def stats_filters(
    *,
    state_under_review: list[str],
    cycle: list[int],
    response: list[str],
    issue: list[str],
    recommending_state: list[str],
    responsible_body: list[str],
) -> list[Any]:
    """Conditions on the read model for the statistics filters."""
    r = TrackedRecommendation
    conds: list[Any] = []
    if state_under_review:
        conds.append(r.state_under_review.in_(state_under_review))
    if cycle:
        conds.append(r.cycle.in_(cycle))
    if response:
        conds.append(r.response.in_(response))
    for values, table, column in (
        (issue, TrackedIssue, TrackedIssue.issue),
        (recommending_state, TrackedRecommendingState, TrackedRecommendingState.iso3),
        (responsible_body, TrackedBody, TrackedBody.name),
    ):
        if values:
            conds.append(r.id.in_(select(table.recommendation_id).where(column.in_(values))))
    return conds


def status_counts_statement(group_by: str | None, conditions: list[Any]) -> Select[Any]:
    """(group key, status, count) per group: one GROUP BY over the read model."""
    r = TrackedRecommendation
    if group_by is None:
        key = literal("all")
        return select(key, r.status, func.count()).where(*conditions).group_by(r.status)
    if group_by in GROUP_COLUMNS:
        key = GROUP_COLUMNS[group_by]
        return select(key, r.status, func.count()).where(*conditions).group_by(key, r.status)
    table, key = GROUP_LINKS[group_by]
    return (
        select(key, r.status, func.count())
        .select_from(table)
        .join(r, r.id == table.recommendation_id)
        .where(*conditions)
        .group_by(key, r.status)
    )


async def status_counts(
    session: AsyncSession, group_by: str | None, conditions: list[Any]
) -> list[tuple[str, str, int]]:
    """(group key, status, count) rows; one GROUP BY over the read model."""
    rows = await session.execute(status_counts_statement(group_by, conditions))
    return [("none" if k is None else str(k), status, int(n)) for k, status, n in rows]


# Migration 0002 (PostgreSQL only): moved at the commit of every change to what stats count.
_GENERATION = text(
    "SELECT value, txid_current_if_assigned() IS NULL FROM stats_generation WHERE id = 1"
)


async def stats_generation(session: AsyncSession) -> int | None:
    """The statistics generation, or None when an answer must not be cached or reused.

    None on SQLite (no generation there), and when this transaction has written: its own
    changes are visible to it but move the generation only when it commits.
    """
    if not is_postgres(session.bind):
        return None
    row = (await session.execute(_GENERATION)).one_or_none()
    if row is None or not row[1]:
        return None
    return int(row[0])


def triggered(status_column: Any) -> Any:
    """1 when a status counts as having triggered action."""
    return case((status_column.in_(TRIGGERED_ACTION), 1), else_=0)


async def read_model_size(session: AsyncSession) -> int:
    """How many recommendations the read model holds."""
    return int(await session.scalar(select(func.count()).select_from(TrackedRecommendation)) or 0)
