"""Use case: import recommendations idempotently, row by row, with a report."""

from __future__ import annotations

import gc
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field, ValidationError
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from services.catalog import queries, recommendations
from services.catalog.formats import RowResult
from services.catalog.models import (
    ImportRun,
    Priority,
    Recommendation,
    RecommendationIssue,
    RecommendingState,
    ResponseEvent,
    ResponsibleBody,
)
from services.catalog.schemas import (
    ImportReport,
    PriorityIn,
    RecommendationCreate,
    Rejection,
    ResponsibleBodyIn,
)
from services.catalog.vocabulary import suggest_action_category
from shared.db import bulk_insert, utcnow
from shared.events import (
    SCHEMA_BASE,
    Envelope,
    RecommendationAssigned,
    RecommendationCreated,
    RecommendationPrioritised,
    RecommendationResponseChanged,
    RecommendationUpdated,
)
from shared.http import InvalidValue
from shared.outbox import record_event, record_events_bulk

CHUNK = 2000
DESCRIPTIVE = (
    "document",
    "paragraph",
    "text",
    "session",
    "review_date",
    "recommending_states",
    "issues",
    "affected_groups",
    "sdg_goals",
)
Progress = Callable[[int], None]


class ImportRecord(RecommendationCreate):
    """One imported recommendation: a create payload plus what the project's export adds."""

    id: str | None = Field(None, max_length=120)
    cluster_id: str | None = Field(None, max_length=120)
    responsible_bodies: list[ResponsibleBodyIn] | None = None
    priorities: list[PriorityIn] | None = None


class ImportRejected(InvalidValue):
    """An all-or-nothing import met bad rows: nothing was written."""

    title = "Import rejected"


@dataclass
class _Prepared:
    line: int
    rec_id: str
    data: ImportRecord


@dataclass
class _Tally:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[Rejection] = field(default_factory=list)


def _reason(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        loc = ".".join(str(p) for p in error.get("loc", ()))
        message = error.get("msg", "invalid").removeprefix("Value error, ")
        parts.append(f"{loc}: {message}" if loc else message)
    return "; ".join(parts)


def prepare(rows: Iterable[RowResult], tally: _Tally) -> list[_Prepared]:
    """Validate rows, derive ids, and drop repeats within the file."""
    prepared: dict[str, _Prepared] = {}
    for row in rows:
        if row.error is not None or row.record is None:
            tally.rejected.append(Rejection(line=row.line, reason=row.error or "empty row"))
            continue
        try:
            data = ImportRecord.model_validate(row.record)
        except ValidationError as exc:
            tally.rejected.append(Rejection(line=row.line, reason=_reason(exc)))
            continue
        rec_id = recommendations.recommendation_id(
            mechanism=data.mechanism,
            state_under_review=data.state_under_review,
            cycle=data.cycle,
            number=data.number,
            body=data.body,
            document=data.document,
            text=data.text,
            recommending_states=data.recommending_states,
        )
        if data.id is not None and data.id != rec_id:
            tally.rejected.append(
                Rejection(
                    line=row.line, reason=f"id {data.id!r} does not match its fields ({rec_id!r})"
                )
            )
            continue
        earlier = prepared.get(rec_id)
        if earlier is not None:
            if earlier.data.model_dump(exclude={"id"}) == data.model_dump(exclude={"id"}):
                tally.unchanged += 1
            else:
                tally.rejected.append(
                    Rejection(
                        line=row.line,
                        reason=f"{rec_id} repeats line {earlier.line} with different content",
                    )
                )
            continue
        prepared[rec_id] = _Prepared(row.line, rec_id, data)
    return list(prepared.values())


def _responses(data: ImportRecord) -> list[dict[str, Any]]:
    return [r.model_dump() for r in data.responses]


def _new_rows(item: _Prepared, now: Any) -> dict[str, Any]:
    data = item.data
    category, suggested = data.action_category, False
    if category is None:
        category = suggest_action_category(data.text)
        suggested = category is not None
    return {
        "id": item.rec_id,
        "mechanism": data.mechanism,
        "body": data.body.upper() if data.body else None,
        "document": data.document,
        "number": data.number,
        "paragraph": data.paragraph,
        "text": data.text,
        "cycle": data.cycle,
        "session": data.session,
        "review_date": data.review_date,
        "state_under_review": data.state_under_review,
        "recommending_states": data.recommending_states,
        "response_position": data.responses[-1].position if data.responses else None,
        "issues": data.issues,
        "action_category": category,
        "action_category_suggested": suggested,
        "affected_groups": data.affected_groups,
        "sdg_goals": data.sdg_goals,
        "cluster_id": data.cluster_id,
        "sort_key": recommendations.sort_key(
            data.state_under_review, data.cycle, data.number, item.rec_id
        ),
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }


async def _create_all(session: AsyncSession, items: list[_Prepared]) -> None:
    now = utcnow()
    recs, states, issues, responses, bodies, priorities, events = [], [], [], [], [], [], []
    for item in items:
        values = _new_rows(item, now)
        recs.append(values)
        states.extend(
            {"recommendation_id": item.rec_id, "iso3": s} for s in values["recommending_states"]
        )
        issues.extend({"recommendation_id": item.rec_id, "issue": i} for i in values["issues"])
        item_responses = _responses(item.data)
        responses.extend(
            {"recommendation_id": item.rec_id, "recorded_at": now, **r} for r in item_responses
        )
        item_bodies = [
            {"recommendation_id": item.rec_id, "name": b.name, "role": b.role, "position": n}
            for n, b in enumerate(item.data.responsible_bodies or [])
        ]
        bodies.extend(item_bodies)
        item_priorities = [
            {"recommendation_id": item.rec_id, "set_at": now, **p.model_dump()}
            for p in item.data.priorities or []
        ]
        priorities.extend(item_priorities)
        snap = recommendations.snapshot_from(values, item_responses, item_bodies, item_priorities)
        events.append(
            Envelope(
                source=recommendations.SOURCE,
                type=RecommendationCreated.event_type,
                subject=item.rec_id,
                dataschema=_schema(RecommendationCreated),
                data={"recommendation": snap},
            )
        )
    await bulk_insert(session, Recommendation.__table__, recs)
    await bulk_insert(session, RecommendingState.__table__, states)
    await bulk_insert(session, RecommendationIssue.__table__, issues)
    await bulk_insert(session, ResponseEvent.__table__, responses)
    await bulk_insert(session, ResponsibleBody.__table__, bodies)
    await bulk_insert(session, Priority.__table__, priorities)
    await record_events_bulk(session, events)


def _schema(model: Any) -> str:
    return f"{SCHEMA_BASE}:{model.event_type}:v{model.version}"


def _response_key(r: dict[str, Any]) -> tuple[Any, ...]:
    return (r["position"], r.get("declared_label"), r.get("source"), r.get("date"), r.get("note"))


async def _update_one(session: AsyncSession, rec: Recommendation, data: ImportRecord) -> bool:
    """Bring one existing recommendation in line with the imported record."""
    changed: list[str] = []
    for name in DESCRIPTIVE:
        value = getattr(data, name)
        if value is None or value == []:
            continue  # formats carry different fields: an import fills and changes, never clears
        if getattr(rec, name) != value:
            setattr(rec, name, value)
            changed.append(name)
    if data.action_category is not None and (
        rec.action_category != data.action_category or rec.action_category_suggested
    ):
        rec.action_category, rec.action_category_suggested = data.action_category, False
        changed.append("action_category")
    if data.cluster_id is not None and rec.cluster_id != data.cluster_id:
        rec.cluster_id = data.cluster_id
        changed.append("cluster_id")
    history = [recommendations.response_dict(e) for e in rec.responses]
    previous = history[-1] if history else None
    known = {_response_key(r) for r in history}
    new_responses = [r for r in _responses(data) if _response_key(r) not in known]
    now = utcnow()
    for response in new_responses:
        session.add(ResponseEvent(recommendation_id=rec.id, recorded_at=now, **response))
    if new_responses:
        rec.response_position = new_responses[-1]["position"]
    bodies_changed = priorities_changed = False
    if data.responsible_bodies is not None or data.priorities is not None:
        full = await queries.get_full(session, rec.id)
        assert full is not None
        if data.responsible_bodies is not None:
            current = [(b.name, b.role) for b in full.responsible_bodies]
            wanted = [(b.name, b.role) for b in data.responsible_bodies]
            if current != wanted:
                bodies_changed = True
                await session.execute(
                    delete(ResponsibleBody).where(ResponsibleBody.recommendation_id == rec.id)
                )
                for n, (name, role) in enumerate(wanted):
                    session.add(
                        ResponsibleBody(recommendation_id=rec.id, name=name, role=role, position=n)
                    )
        if data.priorities is not None:
            current_p = sorted((p.term, p.set_by, p.note) for p in full.priorities)
            wanted_p = sorted((p.term, p.set_by, p.note) for p in data.priorities)
            if current_p != wanted_p:
                priorities_changed = True
                await session.execute(delete(Priority).where(Priority.recommendation_id == rec.id))
                for p in data.priorities:
                    session.add(Priority(recommendation_id=rec.id, set_at=now, **p.model_dump()))
    if not (changed or new_responses or bodies_changed or priorities_changed):
        return False
    if "recommending_states" in changed or "issues" in changed:
        await recommendations.set_links(session, rec.id, rec.recommending_states, rec.issues)
    rec.version += 1
    rec.updated_at = now
    fresh = await recommendations.reload(session, rec.id)
    snap = recommendations.snapshot(fresh)
    emitted = []
    if changed:
        emitted.append(
            RecommendationUpdated.model_validate(
                {"recommendation": snap, "changed_fields": changed}
            )
        )
    if new_responses:
        emitted.append(
            RecommendationResponseChanged.model_validate(
                {"recommendation": snap, "previous": previous}
            )
        )
    if bodies_changed:
        emitted.append(RecommendationAssigned.model_validate({"recommendation": snap}))
    if priorities_changed:
        emitted.append(RecommendationPrioritised.model_validate({"recommendation": snap}))
    for event in emitted:
        record_event(session, event, source=recommendations.SOURCE, subject=rec.id)
    return True


_gc_lock = threading.Lock()
_gc_pauses = 0
_gc_was_enabled = False


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector (reference counting still frees memory).

    An import builds a few objects per field of every row (records, row dicts, snapshots,
    envelopes) and keeps them alive until its chunk is written: the collector would traverse
    them again and again, which took about half of the import's Python time. Nested and
    concurrent imports share one pause; the collector runs again when the last one ends.
    """
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


async def run_import(
    session: AsyncSession,
    rows: Iterable[RowResult],
    *,
    fmt: str,
    atomic: bool,
    filename: str | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Create, update or leave alone each row's recommendation; never duplicate one.

    With atomic=True any rejected row rejects the whole file (ImportRejected) before
    anything is written. The caller's unit of work commits the result.
    """
    with _cyclic_gc_paused():
        return await _run_import(
            session, rows, fmt=fmt, atomic=atomic, filename=filename, progress=progress
        )


async def _run_import(
    session: AsyncSession,
    rows: Iterable[RowResult],
    *,
    fmt: str,
    atomic: bool,
    filename: str | None,
    progress: Progress | None,
) -> ImportReport:
    tally = _Tally()
    started = utcnow()
    items = prepare(rows, tally)
    if atomic and tally.rejected:
        report = _report(None, fmt, atomic, False, tally)
        raise ImportRejected(
            f"{len(tally.rejected)} rows rejected; nothing was imported",
            field="body",
            report=report.model_dump(mode="json"),
        )
    await queries.plan_generically(session)
    for start in range(0, len(items), CHUNK):
        chunk = items[start : start + CHUNK]
        existing = await queries.existing_for_import(session, [i.rec_id for i in chunk])
        fresh = [i for i in chunk if i.rec_id not in existing]
        await _create_all(session, fresh)
        tally.created += len(fresh)
        for item in chunk:
            rec = existing.get(item.rec_id)
            if rec is None:
                continue
            if await _update_one(session, rec, item.data):
                tally.updated += 1
            else:
                tally.unchanged += 1
        # Outbox rows must reach the database before the identity map is cleared.
        await session.flush()
        session.expunge_all()
        if progress is not None:
            progress(len(chunk))
    run_id = uuid.uuid4().hex
    report = _report(run_id, fmt, atomic, True, tally)
    session.add(
        ImportRun(
            id=run_id,
            format=fmt,
            filename=filename,
            atomic=atomic,
            created=tally.created,
            updated=tally.updated,
            unchanged=tally.unchanged,
            rejected=len(tally.rejected),
            report=report.model_dump(mode="json"),
            started_at=started,
            finished_at=utcnow(),
        )
    )
    return report


def _report(
    run_id: str | None, fmt: str, atomic: bool, committed: bool, tally: _Tally
) -> ImportReport:
    return ImportReport(
        id=run_id,
        format=fmt,
        atomic=atomic,
        committed=committed,
        created=tally.created,
        updated=tally.updated,
        unchanged=tally.unchanged,
        rejected=tally.rejected,
    )


async def get_run(session: AsyncSession, run_id: str) -> ImportRun | None:
    """A stored import report."""
    return await session.get(ImportRun, run_id)
