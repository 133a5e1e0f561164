"""Reads of the catalog's tables: filters, pages, facets, similarity, export batches."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    cast,
    exists,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from services.catalog.models import (
    Priority,
    Recommendation,
    RecommendationIssue,
    RecommendingState,
    ResponsibleBody,
)
from shared.db import is_postgres

SORTS = {
    "number": Recommendation.sort_key,
    "updated_at": Recommendation.updated_at,
    "id": Recommendation.id,
}
FTS_CONFIG = literal_column("'english'::regconfig")
# Stored generated column (migration 0002, PostgreSQL only, not mapped: SQLite has no such column).
TEXT_TSV = literal_column("recommendations.text_tsv")
# The list counts matching rows up to this many; beyond it `total` is TOTAL_CAP, not exact.
TOTAL_CAP = 1_000
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass
class RecommendationFilter:
    """Validated filters of the list, facet and export endpoints (all optional, AND-ed)."""

    mechanism: list[str] = field(default_factory=list)
    state_under_review: list[str] = field(default_factory=list)
    cycle: list[int] = field(default_factory=list)
    recommending_state: list[str] = field(default_factory=list)
    response: list[str] = field(default_factory=list)
    issue: list[str] = field(default_factory=list)
    action_category: list[int] = field(default_factory=list)
    responsible_body: list[str] = field(default_factory=list)
    priority: list[str] = field(default_factory=list)
    cluster: str | None = None
    q: str | None = None

    def conditions(self, postgres: bool) -> list[ColumnElement[bool]]:
        """SQL conditions for these filters."""
        r = Recommendation
        conds: list[ColumnElement[bool]] = []
        if self.mechanism:
            conds.append(r.mechanism.in_(self.mechanism))
        if self.state_under_review:
            conds.append(r.state_under_review.in_(self.state_under_review))
        if self.cycle:
            conds.append(r.cycle.in_(self.cycle))
        if self.response:
            conds.append(r.response_position.in_(self.response))
        if self.action_category:
            conds.append(r.action_category.in_(self.action_category))
        if self.cluster:
            conds.append(r.cluster_id == self.cluster)
        if self.recommending_state and postgres:
            conds.append(_contains_any(r.recommending_states, self.recommending_state))
        elif self.recommending_state:
            conds.append(
                exists().where(
                    RecommendingState.recommendation_id == r.id,
                    RecommendingState.iso3.in_(self.recommending_state),
                )
            )
        if self.issue and postgres:
            conds.append(_contains_any(r.issues, self.issue))
        elif self.issue:
            conds.append(
                exists().where(
                    RecommendationIssue.recommendation_id == r.id,
                    RecommendationIssue.issue.in_(self.issue),
                )
            )
        if self.responsible_body:
            conds.append(
                exists().where(
                    ResponsibleBody.recommendation_id == r.id,
                    ResponsibleBody.name.in_(self.responsible_body),
                )
            )
        if self.priority:
            conds.append(
                exists().where(Priority.recommendation_id == r.id, Priority.term.in_(self.priority))
            )
        if self.q:
            conds.append(_text_match(self.q, postgres))
        return conds


def _contains_any(column: Any, values: Sequence[str]) -> ColumnElement[bool]:
    """PostgreSQL: the JSONB list holds one of these values (`@>`, backed by a GIN index)."""
    return or_(*(column.bool_op("@>")(func.jsonb_build_array(value)) for value in values))


def _text_match(q: str, postgres: bool) -> ColumnElement[bool]:
    if postgres:
        return TEXT_TSV.op("@@")(func.websearch_to_tsquery(FTS_CONFIG, q))
    words = _WORD.findall(q)[:10] or [q]
    return and_(*(Recommendation.text.ilike(f"%{w}%") for w in words))


def encode_cursor(values: Sequence[Any]) -> str:
    """An opaque cursor from the last row's sort values."""
    return base64.urlsafe_b64encode(json.dumps(list(values), default=str).encode()).decode()


def decode_cursor(cursor: str) -> list[Any]:
    """The sort values a cursor carries; ValueError when it is not one of ours."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except Exception as exc:
        raise ValueError("cursor is not valid") from exc
    if not isinstance(values, list) or len(values) != 2:
        raise ValueError("cursor is not valid")
    return values


def _ordered(stmt: Select[Any], sort: str, cursor: list[Any] | None) -> Select[Any]:
    descending = sort.startswith("-")
    column = SORTS[sort.lstrip("-")]
    if cursor is not None:
        value, last_id = cursor
        if column is Recommendation.updated_at:
            from datetime import datetime

            value = datetime.fromisoformat(value)
        if column is Recommendation.id:
            cond = Recommendation.id < last_id if descending else Recommendation.id > last_id
        elif descending:
            cond = or_(column < value, and_(column == value, Recommendation.id < last_id))
        else:
            cond = or_(column > value, and_(column == value, Recommendation.id > last_id))
        stmt = stmt.where(cond)
    if descending:
        return stmt.order_by(column.desc(), Recommendation.id.desc())
    return stmt.order_by(column.asc(), Recommendation.id.asc())


# What a list item shows (recommendations.summary) plus the sort columns the cursor needs.
LIST_COLUMNS = (
    Recommendation.id,
    Recommendation.mechanism,
    Recommendation.number,
    Recommendation.text,
    Recommendation.cycle,
    Recommendation.state_under_review,
    Recommendation.response_position,
    Recommendation.recommending_states,
    Recommendation.issues,
    Recommendation.action_category,
    Recommendation.action_category_suggested,
    Recommendation.sort_key,
    Recommendation.created_at,
    Recommendation.updated_at,
)


@dataclass
class Page:
    """One page of a list: its rows, the matching total (capped) and the next cursor.

    The rows are read-only Row objects with the LIST_COLUMNS as attributes (no ORM instances:
    a list page never changes what it shows).
    """

    items: list[Any]
    total: int
    total_exact: bool
    next_cursor: str | None


def count_statement(conds: Sequence[ColumnElement[bool]], cap: int | None) -> Select[Any]:
    """Count the rows matching conds, stopping after cap + 1 of them (cap None: count all)."""
    if cap is None:
        return select(func.count()).select_from(Recommendation).where(*conds)
    matching = (
        select(literal_column("1").label("one"))
        .select_from(Recommendation)
        .where(*conds)
        .limit(cap + 1)
        .subquery()
    )
    return select(func.count()).select_from(matching)


def page_statement(
    conds: Sequence[ColumnElement[bool]], *, sort: str, limit: int, cursor: list[Any] | None
) -> Select[Any]:
    """The rows of one page (LIST_COLUMNS), plus one more to tell whether another follows."""
    return _ordered(select(*LIST_COLUMNS).where(*conds), sort, cursor).limit(limit + 1)


# PostgreSQL, on every connection of the service: plan each statement for its actual
# parameters. asyncpg prepares every statement, and after five runs PostgreSQL may switch to a
# generic plan, which cannot see how selective a request's filters are (a State with 100 rows or
# an issue with 30,000) and picks a bad plan for many list and facet reads. Set once per
# connection rather than per request: a SET per request cost a tenth of the server's CPU.
SERVER_SETTINGS = {"plan_cache_mode": "force_custom_plan"}


async def plan_generically(session: AsyncSession) -> None:
    """PostgreSQL: let this transaction reuse generic plans (the import's foreign-key checks,
    run once per stored row, are faster that way)."""
    if is_postgres(session.bind):
        await session.execute(text("SET LOCAL plan_cache_mode = auto"))


def list_statement(
    conds: Sequence[ColumnElement[bool]],
    *,
    sort: str,
    limit: int,
    cursor: list[Any] | None,
    cap: int | None,
) -> Select[Any]:
    """One page (page_statement) with, in a column of its own, how many rows match the filters
    (count_statement, capped): the page and its total in one round trip."""
    total = count_statement(conds, cap).scalar_subquery().label("matching_total")
    return page_statement(conds, sort=sort, limit=limit, cursor=cursor).add_columns(total)


async def list_page(
    session: AsyncSession,
    filters: RecommendationFilter,
    *,
    sort: str,
    limit: int,
    cursor: list[Any] | None,
    exact_total: bool = False,
) -> Page:
    """One page of recommendations, how many match the filters, and the next cursor.

    The total is exact up to TOTAL_CAP; beyond it, it is TOTAL_CAP and total_exact is false
    (counting every match of a broad filter costs more than the page itself), unless
    exact_total asks to count them all.
    """
    conds = filters.conditions(is_postgres(session.bind))
    cap = None if exact_total else TOTAL_CAP
    # Core, not the ORM: a list page is read-only rows, never instances.
    conn = await session.connection()
    stmt = list_statement(conds, sort=sort, limit=limit, cursor=cursor, cap=cap)
    rows = list((await conn.execute(stmt)).all())
    if rows:
        counted = int(rows[0].matching_total)
    elif cursor is None:
        counted = 0
    else:  # a page past the last match still tells how many there are
        counted = int(await conn.scalar(count_statement(conds, cap)) or 0)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        column_name = SORTS[sort.lstrip("-")].key
        next_cursor = encode_cursor([getattr(last, column_name), last.id])
    if cap is None or counted <= cap:
        return Page(rows, counted, True, next_cursor)
    return Page(rows, cap, False, next_cursor)


async def get_full(
    session: AsyncSession, recommendation_id: str, *, refresh: bool = False
) -> Recommendation | None:
    """One recommendation with its responses, bodies and priorities loaded (refresh: anew)."""
    stmt = (
        select(Recommendation)
        .where(Recommendation.id == recommendation_id)
        .options(
            selectinload(Recommendation.responses),
            selectinload(Recommendation.responsible_bodies),
            selectinload(Recommendation.priorities),
        )
    )
    if refresh:
        stmt = stmt.execution_options(populate_existing=True)
    return await session.scalar(stmt)


async def iter_full(
    session: AsyncSession, filters: RecommendationFilter, *, batch: int = 1000
) -> AsyncIterator[list[Recommendation]]:
    """All matching recommendations, fully loaded, in number order, a batch at a time."""
    conds = filters.conditions(is_postgres(session.bind))
    cursor: list[Any] | None = None
    while True:
        stmt = _ordered(
            select(Recommendation)
            .where(*conds)
            .options(
                selectinload(Recommendation.responses),
                selectinload(Recommendation.responsible_bodies),
                selectinload(Recommendation.priorities),
            ),
            "number",
            cursor,
        ).limit(batch)
        rows = list((await session.scalars(stmt)).all())
        if not rows:
            return
        yield rows
        if len(rows) < batch:
            return
        cursor = [rows[-1].sort_key, rows[-1].id]


FACET_COLUMNS = {
    "mechanism": Recommendation.mechanism,
    "state_under_review": Recommendation.state_under_review,
    "cycle": Recommendation.cycle,
    "response": Recommendation.response_position,
    "action_category": Recommendation.action_category,
}
# A recommendation has at most one row per State, issue and body (their primary keys), but may
# have the same priority term from several groups: only those need a distinct count.
LINK_FACETS: tuple[tuple[str, Any, Any, bool], ...] = (
    ("recommending_state", RecommendingState, RecommendingState.iso3, False),
    ("issue", RecommendationIssue, RecommendationIssue.issue, False),
    ("responsible_body", ResponsibleBody, ResponsibleBody.name, False),
    ("priority", Priority, Priority.term, True),
)


async def facet_counts(
    session: AsyncSession, filters: RecommendationFilter
) -> tuple[int, dict[str, dict[str, int]]]:
    """Counts per facet value among the recommendations matching the filters, most first.

    One statement: the matching rows are found once (a CTE), then counted per facet.
    """
    conds = filters.conditions(is_postgres(session.bind))
    # With no filter every row matches: count the tables themselves, joining nothing.
    matching: Any = (
        select(Recommendation.id, *FACET_COLUMNS.values()).where(*conds).cte("matching")
        if conds
        else Recommendation.__table__
    )
    parts: list[Select[Any]] = [
        select(literal("total"), null(), func.count()).select_from(matching)
    ]
    for name, column in FACET_COLUMNS.items():
        value = matching.c[column.key]
        parts.append(
            select(literal(name), cast(value, String), func.count())
            .where(value.is_not(None))
            .group_by(value)
        )
    for name, table, column, distinct in LINK_FACETS:
        counted = func.count(func.distinct(table.recommendation_id)) if distinct else func.count()
        source: Any = table.__table__
        if conds:
            source = source.join(matching, matching.c.id == table.recommendation_id)
        parts.append(
            select(literal(name), cast(column, String), counted)
            .select_from(source)
            .group_by(column)
        )
    total = 0
    counts: dict[str, list[tuple[str, int]]] = {name: [] for name in FACET_COLUMNS}
    counts.update({name: [] for name, *_ in LINK_FACETS})
    for facet, value, n in await session.execute(union_all(*parts)):
        if facet == "total":
            total = int(n)
        else:
            counts[facet].append((str(value), int(n)))
    facets = {
        name: dict(sorted(pairs, key=lambda pair: (-pair[1], pair[0])))
        for name, pairs in counts.items()
    }
    return total, facets


async def known_body_names(session: AsyncSession, names: Sequence[str]) -> set[str]:
    """Which of these responsible-body names the catalog knows."""
    rows = await session.scalars(
        select(ResponsibleBody.name).where(ResponsibleBody.name.in_(names)).distinct()
    )
    return set(rows)


async def texts_for_state(
    session: AsyncSession, state_under_review: str
) -> list[tuple[str, str | None, str, list[str]]]:
    """(id, number, text, recommending States) of every recommendation to one State."""
    rows = await session.execute(
        select(
            Recommendation.id,
            Recommendation.number,
            Recommendation.text,
            Recommendation.recommending_states,
        ).where(Recommendation.state_under_review == state_under_review)
    )
    return [(row[0], row[1], row[2], row[3]) for row in rows]


async def existing_for_import(
    session: AsyncSession, ids: Sequence[str]
) -> dict[str, Recommendation]:
    """Recommendations with these ids, with their responses loaded, keyed by id."""
    if not ids:
        return {}
    rows = await session.scalars(
        select(Recommendation)
        .where(Recommendation.id.in_(ids))
        .options(selectinload(Recommendation.responses))
    )
    return {r.id: r for r in rows}
