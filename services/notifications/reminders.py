"""Use cases: schedule reminders from deadline events, and send them when due."""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.notifications.models import Recipient, Reminder, TrackedDeadline
from services.notifications.routing import default_channels, insert_deliveries, new_delivery
from services.notifications.settings import NotificationsSettings
from shared.db import is_postgres
from shared.events import Envelope

LOCAL_SEND_TIME = dt.time(9, 0)


def local_morning(day: dt.date, timezone: str) -> dt.datetime:
    """9:00 in the recipient's time zone on that day, as UTC."""
    zone = zoneinfo.ZoneInfo(timezone)
    return dt.datetime.combine(day, LOCAL_SEND_TIME, tzinfo=zone).astimezone(dt.UTC)


async def _cancel(session: AsyncSession, deadline_id: str) -> None:
    await session.execute(
        update(Reminder)
        .where(Reminder.deadline_id == deadline_id, Reminder.status == "scheduled")
        .values(status="cancelled")
    )


async def on_deadline_set(
    session: AsyncSession, envelope: Envelope, settings: NotificationsSettings, now: dt.datetime
) -> int:
    """Track the deadline and (re)schedule its reminders, overdue notice and escalations."""
    snap = envelope.data["deadline"]
    due_on = dt.date.fromisoformat(snap["due_on"])
    met_on = dt.date.fromisoformat(snap["met_on"]) if snap.get("met_on") else None
    state = await session.get(TrackedDeadline, snap["id"])
    unchanged = (
        state is not None
        and state.due_on == due_on
        and state.snapshot.get("responsible_body") == snap.get("responsible_body")
    )
    if state is None:
        state = TrackedDeadline(id=snap["id"], due_on=due_on, snapshot=snap)
        session.add(state)
    state.snapshot, state.due_on, state.met_on = snap, due_on, met_on
    state.recommendation = envelope.data.get("recommendation")
    state.updated_at = now
    await session.flush()
    if met_on is not None:
        await _cancel(session, state.id)
        return 0
    if unchanged:
        return 0
    await _cancel(session, state.id)
    people = await _People.load(session, bodies={snap.get("responsible_body")})
    return await _insert(session, _plan(state, settings, now, people))


async def plan_for_recipient(
    session: AsyncSession, recipient: Recipient, settings: NotificationsSettings, now: dt.datetime
) -> int:
    """Reminders for deadlines already tracked when a ministry or coordinator joins or moves.

    Reminders already scheduled or sent keep their idempotency keys, so nothing is planned twice.
    """
    if recipient.kind not in ("ministry", "coordinator") or recipient.unsubscribed_at is not None:
        return 0
    await session.flush()
    horizon = now.date() - dt.timedelta(days=max(settings.escalation_after_days, default=0) + 1)
    open_deadlines = await session.scalars(
        select(TrackedDeadline).where(
            TrackedDeadline.met_on.is_(None), TrackedDeadline.due_on >= horizon
        )
    )
    people = await _People.load(session, bodies={recipient.organisation})
    rows = [
        row
        for state in open_deadlines
        if recipient.kind == "coordinator"
        or state.snapshot.get("responsible_body") == recipient.organisation
        for row in _plan(state, settings, now, people)
    ]
    return await _insert(session, rows)


class _People:
    """Who reminders can go to: focal points and heads per body, and the coordinators."""

    def __init__(self, recipients: list[Recipient]) -> None:
        self.coordinators = [r for r in recipients if r.kind == "coordinator"]
        self._by_role: dict[tuple[str | None, str | None], list[Recipient]] = {}
        for r in recipients:
            if r.kind == "ministry":
                self._by_role.setdefault((r.organisation, r.role_in_body), []).append(r)

    @classmethod
    async def load(cls, session: AsyncSession, bodies: set[str | None]) -> _People:
        """The subscribed coordinators and the ministries of these bodies, in one query."""
        named = [body for body in bodies if body]
        return cls(
            list(
                await session.scalars(
                    select(Recipient).where(
                        Recipient.unsubscribed_at.is_(None),
                        or_(
                            Recipient.kind == "coordinator",
                            and_(Recipient.kind == "ministry", Recipient.organisation.in_(named)),
                        ),
                    )
                )
            )
        )

    def of(self, body: str | None, role: str) -> list[Recipient]:
        """The body's recipients in this role (none when the deadline names no body)."""
        return self._by_role.get((body, role), []) if body else []


def _plan(
    state: TrackedDeadline, settings: NotificationsSettings, now: dt.datetime, people: _People
) -> list[dict[str, Any]]:
    """A deadline's reminders, overdue notice and escalations, as reminder rows."""
    due_on = state.due_on
    body = state.snapshot.get("responsible_body")
    focal_points, heads = people.of(body, "focal_point"), people.of(body, "head")
    coordinators = people.coordinators
    plan: list[tuple[Recipient, str, int | None, int, dt.date]] = []
    for recipient in focal_points or coordinators:
        for lead in settings.reminder_lead_days:
            plan.append((recipient, "reminder", lead, 0, due_on - dt.timedelta(days=lead)))
        plan.append((recipient, "overdue", None, 0, due_on + dt.timedelta(days=1)))
    escalation = settings.escalation_after_days
    if len(escalation) > 0:
        for recipient in heads or coordinators:
            plan.append(
                (recipient, "escalation", None, 1, due_on + dt.timedelta(days=escalation[0]))
            )
    if len(escalation) > 1:
        for recipient in coordinators:
            plan.append(
                (recipient, "escalation", None, 2, due_on + dt.timedelta(days=escalation[1]))
            )
    rows: list[dict[str, Any]] = []
    for recipient, kind, lead, level, day in plan:
        due_at = local_morning(day, recipient.timezone)
        if kind == "reminder" and due_at < now - dt.timedelta(hours=12):
            continue  # a reminder whose moment has passed would only confuse
        rows.append(
            {
                "id": uuid.uuid4().hex,
                "idempotency_key": f"{state.id}:{due_on}:{recipient.id}:{kind}:{lead}:{level}",
                "deadline_id": state.id,
                "recipient_id": recipient.id,
                "kind": kind,
                "lead_days": lead,
                "level": level,
                "due_at": due_at,
                "status": "scheduled",
                "created_at": now,
            }
        )
    return rows


async def _insert(session: AsyncSession, rows: list[dict[str, Any]]) -> int:
    """Insert reminder rows, skipping any whose idempotency key exists; how many were new."""
    if not rows:
        return 0
    insert = pg_insert if is_postgres(session.bind) else sqlite_insert
    stmt = (
        insert(Reminder)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(Reminder.id)
    )
    return len((await session.scalars(stmt, rows)).all())


async def on_deadline_met(session: AsyncSession, envelope: Envelope, now: dt.datetime) -> None:
    """No more reminders once the deadline is met."""
    snap = envelope.data["deadline"]
    state = await session.get(TrackedDeadline, snap["id"])
    met_on = dt.date.fromisoformat(snap["met_on"]) if snap.get("met_on") else now.date()
    if state is None:
        state = TrackedDeadline(
            id=snap["id"], due_on=dt.date.fromisoformat(snap["due_on"]), snapshot=snap
        )
        session.add(state)
    state.snapshot, state.met_on, state.updated_at = snap, met_on, now
    await session.flush()
    await _cancel(session, state.id)


async def send_due(session: AsyncSession, now: dt.datetime, limit: int = 200) -> int:
    """Turn due reminders into deliveries (claimed row by row; a replica skips locked ones).

    The claim is the row lock: the reminder is marked sent and its deliveries are written in
    the caller's transaction, so no lease is needed (a crash rolls both back).
    """
    stmt = (
        select(Reminder, TrackedDeadline, Recipient)
        .join(TrackedDeadline, TrackedDeadline.id == Reminder.deadline_id)
        .join(Recipient, Recipient.id == Reminder.recipient_id)
        .where(
            Reminder.status == "scheduled",
            Reminder.due_at <= now,
            or_(Reminder.claimed_until.is_(None), Reminder.claimed_until < now),
        )
        .order_by(Reminder.due_at)
        .limit(limit)
    )
    if is_postgres(session.bind):
        stmt = stmt.with_for_update(skip_locked=True, of=Reminder)
    rows = list(await session.execute(stmt))
    deliveries: list[dict[str, Any]] = []
    for reminder, deadline, recipient in rows:
        if deadline.met_on is not None:
            reminder.status = "cancelled"
            continue
        data: dict[str, Any] = {"deadline": deadline.snapshot}
        if reminder.kind == "reminder":
            data["days_left"] = (deadline.due_on - now.date()).days
        else:
            data["days_overdue"] = (now.date() - deadline.due_on).days
        if reminder.kind == "escalation":
            data["level"] = reminder.level
        context = {
            "event": {
                "id": reminder.id,
                "type": f"upr.notifications.{reminder.kind}",
                "time": now.isoformat(),
            },
            "recommendation": _recommendation(deadline.recommendation),
            "data": data,
        }
        for channel in default_channels(recipient):
            deliveries.append(
                new_delivery(
                    event_id=reminder.id,
                    event_type=f"upr.notifications.{reminder.kind}",
                    kind=reminder.kind,
                    recipient=recipient,
                    channel=channel,
                    cadence="immediate",
                    context=context,
                    now=now,
                    key=f"reminder:{reminder.id}:{channel}",
                )
            )
        reminder.status = "sent"
    await insert_deliveries(session, deliveries)
    return len(rows)


def _recommendation(rec: dict[str, Any] | None) -> dict[str, Any] | None:
    if not rec:
        return None
    return {
        "id": rec.get("id"),
        "number": rec.get("number"),
        "text": rec.get("text"),
        "state_under_review": rec.get("state_under_review"),
        "recommending_states": rec.get("recommending_states") or [],
        "issues": rec.get("issues") or [],
        "responsible_bodies": rec.get("responsible_bodies") or [],
    }
