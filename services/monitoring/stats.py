"""Use case: implementation statistics grouped by issue, State, body, response or cycle."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring import queries
from services.monitoring.schemas import STATUSES, TRIGGERED_ACTION, Stats, StatsGroup


def _group(key: str, counts: dict[str, int]) -> StatsGroup:
    total = sum(counts.values())
    triggered = sum(n for status, n in counts.items() if status in TRIGGERED_ACTION)
    return StatsGroup(
        key=key,
        total=total,
        by_status={status: counts.get(status, 0) for status in STATUSES},
        triggered_action=triggered,
        triggered_action_share=round(triggered / total, 4) if total else 0.0,
    )


async def compute(session: AsyncSession, group_by: str, conditions: list[Any]) -> Stats:
    """Counts per consolidated status, and the share that triggered action, per group."""
    grouped: dict[str, dict[str, int]] = {}
    for key, status, n in await queries.status_counts(session, group_by, conditions):
        grouped.setdefault(key, {})[status] = n
    overall: dict[str, int] = {}
    for _, status, n in await queries.status_counts(session, None, conditions):
        overall[status] = overall.get(status, 0) + n
    groups = sorted(
        (_group(key, counts) for key, counts in grouped.items()), key=lambda g: (-g.total, g.key)
    )
    return Stats(group_by=group_by, overall=_group("all", overall), groups=groups)
