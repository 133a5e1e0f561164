"""Use cases on deadlines: reporting obligations and the UPR calendar of a review."""

from __future__ import annotations

import calendar
import datetime as dt
import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.models import Deadline, TrackedRecommendation
from services.monitoring.recommendations import SOURCE, ref
from services.monitoring.schemas import DeadlineIn, DeadlineMetIn, DeadlineUpdate
from shared.auth import Principal
from shared.db import is_postgres, utcnow
from shared.events import DeadlineMet, DeadlineSet, DeadlineSnapshot
from shared.http import Conflict, Forbidden, InvalidValue, NotFound
from shared.outbox import record_event

# Months after the review date (UPR practice: outcome adopted ~4-5 months later, voluntary
# mid-term report ~2.5 years in, stakeholder submissions ~7 months before the next review).
REVIEW_CALENDAR: tuple[tuple[str, str, int], ...] = (
    ("response_to_pending", "Responses to pending recommendations (HRC adoption)", 5),
    ("mid_term_report", "Voluntary mid-term report", 30),
    ("stakeholder_submission", "Stakeholder submissions for the next review", 47),
    ("next_review", "Next review by the UPR Working Group", 54),
)


class DeadlineNotFound(NotFound):
    title = "Deadline not found"


class DeadlineAlreadyMet(Conflict):
    title = "Deadline already met"


class NotYourDeadline(Forbidden):
    title = "Not your deadline"


def ensure_may_report(principal: Principal, deadline: Deadline) -> None:
    """An assessor key marks met only the deadlines of its own organisation; editors any."""
    if principal.has_role("editor"):
        return
    if deadline.responsible_body is None or deadline.responsible_body != principal.organisation:
        raise NotYourDeadline(
            f"this key reports for {principal.organisation!r}; deadline {deadline.id} belongs to "
            f"{deadline.responsible_body or 'no responsible body'}: ask an editor"
        )


def add_months(day: dt.date, months: int) -> dt.date:
    """The same day of the month, months later (clamped to the month's last day)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return day.replace(
        year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1])
    )


def snapshot(d: Deadline) -> DeadlineSnapshot:
    """The deadline as events carry it."""
    return DeadlineSnapshot(
        id=d.id,
        kind=d.kind,
        title=d.title,
        state_under_review=d.state_under_review,
        cycle=d.cycle,
        recommendation_id=d.recommendation_id,
        responsible_body=d.responsible_body,
        due_on=d.due_on,
        recurrence_months=d.recurrence_months,
        met_on=d.met_on,
    )


def _review_subject(d: Deadline) -> str:
    return f"{d.state_under_review}-{d.cycle}" if d.cycle else d.state_under_review


def _announce(session: AsyncSession, d: Deadline, rec: TrackedRecommendation | None) -> None:
    record_event(
        session,
        DeadlineSet(deadline=snapshot(d), recommendation=ref(rec) if rec else None),
        source=SOURCE,
        subject=d.recommendation_id or _review_subject(d),
    )


async def ensure_review_calendar(
    session: AsyncSession, state_under_review: str, cycle: int, review_date: dt.date
) -> list[Deadline]:
    """Create the milestones of a review once (they are editable afterwards)."""
    has_calendar = (
        select(Deadline.id)
        .where(
            Deadline.state_under_review == state_under_review,
            Deadline.cycle == cycle,
            Deadline.recommendation_id.is_(None),
            Deadline.kind.in_([kind for kind, _, _ in REVIEW_CALENDAR]),
        )
        .limit(1)
    )
    # Almost every event of a review finds its calendar: only then is the lock skipped.
    if await session.scalar(has_calendar) is not None:
        return []
    if is_postgres(session.bind):
        # Replicas handle different events of one review at once: serialise the check and
        # the insert per review, or each would see no calendar and create its own.
        key = func.hashtext(f"upr-review-calendar:{state_under_review}:{cycle}")
        await session.execute(select(func.pg_advisory_xact_lock(key)))
        if await session.scalar(has_calendar) is not None:
            return []
    created = []
    now = utcnow()
    for kind, title, months in REVIEW_CALENDAR:
        deadline = Deadline(
            id=uuid.uuid4().hex,
            kind=kind,
            title=title,
            state_under_review=state_under_review,
            cycle=cycle,
            due_on=add_months(review_date, months),
            created_at=now,
            updated_at=now,
        )
        session.add(deadline)
        _announce(session, deadline, None)
        created.append(deadline)
    await session.flush()
    return created


async def load(session: AsyncSession, deadline_id: str) -> Deadline:
    """A deadline, or 404."""
    deadline = await session.get(Deadline, deadline_id)
    if deadline is None:
        raise DeadlineNotFound(f"no deadline with id {deadline_id!r}", field="path.deadline_id")
    return deadline


async def create(session: AsyncSession, data: DeadlineIn) -> Deadline:
    """Set a reporting deadline for a recommendation (or a milestone of a review)."""
    rec = None
    if data.recommendation_id is not None:
        rec = await session.get(TrackedRecommendation, data.recommendation_id)
        if rec is None:
            raise InvalidValue(
                f"no recommendation with id {data.recommendation_id!r}",
                field="body.recommendation_id",
            )
    state = rec.state_under_review if rec else data.state_under_review
    assert state is not None
    now = utcnow()
    deadline = Deadline(
        id=uuid.uuid4().hex,
        kind=data.kind,
        title=data.title,
        state_under_review=state.upper(),
        cycle=rec.cycle if rec else data.cycle,
        recommendation_id=data.recommendation_id,
        responsible_body=data.responsible_body,
        due_on=data.due_on,
        recurrence_months=data.recurrence_months,
        created_at=now,
        updated_at=now,
    )
    session.add(deadline)
    await session.flush()
    _announce(session, deadline, rec)
    return deadline


async def _recommendation(session: AsyncSession, d: Deadline) -> TrackedRecommendation | None:
    if d.recommendation_id is None:
        return None
    return await session.get(TrackedRecommendation, d.recommendation_id)


async def update(session: AsyncSession, deadline: Deadline, data: DeadlineUpdate) -> Deadline:
    """Edit a deadline (for instance a milestone of the review calendar)."""
    if deadline.met_on is not None:
        raise DeadlineAlreadyMet(f"deadline {deadline.id} was met on {deadline.met_on}")
    changes = data.model_dump(exclude_unset=True)
    changed = False
    for name, value in changes.items():
        if name == "title" and value is None:
            continue
        if getattr(deadline, name) != value:
            setattr(deadline, name, value)
            changed = True
    if changed:
        deadline.updated_at = utcnow()
        _announce(session, deadline, await _recommendation(session, deadline))
    return deadline


async def mark_met(
    session: AsyncSession, deadline: Deadline, data: DeadlineMetIn
) -> tuple[Deadline, Deadline | None]:
    """Mark a deadline met; a recurring one gets its next occurrence."""
    if deadline.met_on is not None:
        raise DeadlineAlreadyMet(f"deadline {deadline.id} was met on {deadline.met_on}")
    deadline.met_on = data.met_on
    deadline.met_by_evidence_id = data.evidence_id
    deadline.updated_at = utcnow()
    rec = await _recommendation(session, deadline)
    record_event(
        session,
        DeadlineMet(
            deadline=snapshot(deadline),
            recommendation=ref(rec) if rec else None,
            evidence_id=data.evidence_id,
        ),
        source=SOURCE,
        subject=deadline.recommendation_id or _review_subject(deadline),
    )
    following = None
    if deadline.recurrence_months:
        following = Deadline(
            id=uuid.uuid4().hex,
            kind=deadline.kind,
            title=deadline.title,
            state_under_review=deadline.state_under_review,
            cycle=deadline.cycle,
            recommendation_id=deadline.recommendation_id,
            responsible_body=deadline.responsible_body,
            due_on=add_months(deadline.due_on, deadline.recurrence_months),
            recurrence_months=deadline.recurrence_months,
            created_at=utcnow(),
            updated_at=utcnow(),
        )
        session.add(following)
        await session.flush()
        _announce(session, following, rec)
    return deadline, following


async def meet_with_evidence(
    session: AsyncSession,
    recommendation_id: str,
    organisation: str | None,
    evidence_id: str,
    on: dt.date,
) -> Deadline | None:
    """Evidence arriving for a recommendation meets its earliest open report deadline."""
    candidates = await session.scalars(
        select(Deadline)
        .where(
            Deadline.recommendation_id == recommendation_id,
            Deadline.kind == "report",
            Deadline.met_on.is_(None),
        )
        .order_by(Deadline.due_on)
    )
    for deadline in candidates:
        if deadline.responsible_body is None or deadline.responsible_body == organisation:
            await mark_met(session, deadline, DeadlineMetIn(met_on=on, evidence_id=evidence_id))
            return deadline
    return None


async def listing(
    session: AsyncSession,
    *,
    state_under_review: str | None,
    cycle: int | None,
    recommendation_id: str | None,
    responsible_body: str | None,
    state: str | None,
    due_before: dt.date | None,
    due_after: dt.date | None,
    limit: int,
) -> list[Deadline]:
    """Deadlines matching the filters, soonest first."""
    stmt = select(Deadline).order_by(Deadline.due_on, Deadline.id).limit(limit)
    if state_under_review:
        stmt = stmt.where(Deadline.state_under_review == state_under_review.upper())
    if cycle is not None:
        stmt = stmt.where(Deadline.cycle == cycle)
    if recommendation_id:
        stmt = stmt.where(Deadline.recommendation_id == recommendation_id)
    if responsible_body:
        stmt = stmt.where(Deadline.responsible_body == responsible_body)
    if due_before:
        stmt = stmt.where(Deadline.due_on <= due_before)
    if due_after:
        stmt = stmt.where(Deadline.due_on >= due_after)
    today = dt.date.today()
    if state == "open":
        stmt = stmt.where(Deadline.met_on.is_(None))
    elif state == "met":
        stmt = stmt.where(Deadline.met_on.is_not(None))
    elif state == "overdue":
        stmt = stmt.where(Deadline.met_on.is_(None), Deadline.due_on < today)
    return list(await session.scalars(stmt))
