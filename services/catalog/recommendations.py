"""Use cases on recommendations: create, update, respond, assign, prioritise, find similar."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.catalog import queries
from services.catalog.countries import country_by_iso3
from services.catalog.models import (
    Priority,
    Recommendation,
    RecommendationIssue,
    RecommendingState,
    ResponseEvent,
    ResponsibleBody,
)
from services.catalog.schemas import (
    AssignmentIn,
    PriorityIn,
    RecommendationCreate,
    RecommendationUpdate,
    ResponseIn,
)
from services.catalog.vocabulary import suggest_action_category
from shared.db import utcnow
from shared.events import (
    RecommendationAssigned,
    RecommendationCreated,
    RecommendationPrioritised,
    RecommendationResponseChanged,
    RecommendationUpdated,
    ResponseSnapshot,
)
from shared.http import Conflict, InvalidValue, NotFound
from shared.outbox import record_event

SOURCE = "upr/catalog"
_DIGITS = re.compile(r"\d+")
_SLUG = re.compile(r"[^A-Za-z0-9.]+")
_STOPWORDS = frozenset(
    "a an and the of to in on for with its by as at or be is are that this from all"
    " which into their it other including such any more also well those these"
    # Words most recommendations share say nothing about which ones are alike.
    " issue extend ensure take continue consider further measures efforts step steps"
    " human rights united nations council international national".split()
)
_WORD = re.compile(r"[a-z]+")


class RecommendationExists(Conflict):
    title = "Recommendation exists"


class RecommendationNotFound(NotFound):
    title = "Recommendation not found"


def recommendation_id(
    *,
    mechanism: str,
    state_under_review: str,
    cycle: int | None,
    number: str | None,
    body: str | None = None,
    document: str | None = None,
    text: str = "",
    recommending_states: list[str] | tuple[str, ...] = (),
) -> str:
    """The stable id: KHM-2-118.17 for the UPR, KHM-CEDAW-C.KHM.CO.6-31 for other mechanisms.

    A UPR recommendation without a paragraph number (UPR Info legacy rows) gets a content
    hash instead: KHM-2-h3f9a0c1b2d.
    """
    if mechanism == "upr":
        if number:
            return f"{state_under_review}-{cycle}-{number}"
        digest = hashlib.sha1(
            "|".join([" ".join(text.split()).casefold(), *sorted(recommending_states)]).encode()
        ).hexdigest()[:10]
        return f"{state_under_review}-{cycle}-h{digest}"
    document_slug = _SLUG.sub(".", document or "").strip(".")
    return f"{state_under_review}-{(body or '').upper()}-{document_slug}-{number}"


def sort_key(state_under_review: str, cycle: int | None, number: str | None, rec_id: str) -> str:
    """Groups by State and cycle, then orders numbers naturally (118.9 before 118.10)."""
    padded = _DIGITS.sub(lambda m: m.group(0).zfill(5), number) if number else "~" + rec_id
    return f"{state_under_review}|{cycle or 0:03d}|{padded}"


def _country_ref(iso3: str) -> dict[str, str]:
    return {"iso3": iso3, "name": country_by_iso3(iso3).name}


def response_dict(event: ResponseEvent) -> dict[str, Any]:
    return {
        "position": event.position,
        "declared_label": event.declared_label,
        "source": event.source,
        "date": event.date,
        "note": event.note,
    }


def snapshot_from(
    values: dict[str, Any],
    responses: list[dict[str, Any]],
    bodies: list[dict[str, Any]],
    priorities: list[dict[str, Any]],
) -> dict[str, Any]:
    """A recommendation's full state from its column values and related rows."""
    review_date = values.get("review_date")
    history = [
        {**r, "date": r["date"].isoformat() if r.get("date") else None}
        for r in (
            {k: resp.get(k) for k in ("position", "declared_label", "source", "date", "note")}
            for resp in responses
        )
    ]
    return {
        "id": values["id"],
        "mechanism": values["mechanism"],
        "body": values.get("body"),
        "document": values.get("document"),
        "number": values.get("number"),
        "paragraph": values.get("paragraph"),
        "text": values["text"],
        "cycle": values.get("cycle"),
        "session": values.get("session"),
        "review_date": review_date.isoformat() if review_date else None,
        "state_under_review": _country_ref(values["state_under_review"]),
        "recommending_states": [_country_ref(c) for c in values["recommending_states"]],
        "response": history[-1] if history else None,
        "response_history": history,
        "issues": list(values["issues"]),
        "action_category": values.get("action_category"),
        "action_category_suggested": bool(values.get("action_category_suggested")),
        "affected_groups": list(values.get("affected_groups") or []),
        "sdg_goals": list(values.get("sdg_goals") or []),
        "responsible_bodies": [{"name": b["name"], "role": b["role"]} for b in bodies],
        "priorities": [
            {"term": p["term"], "set_by": p["set_by"], "note": p.get("note")} for p in priorities
        ],
        "cluster_id": values.get("cluster_id"),
        "version": values["version"],
        "created_at": values["created_at"].isoformat(),
        "updated_at": values["updated_at"].isoformat(),
    }


COLUMNS = tuple(c.key for c in Recommendation.__table__.columns)


def snapshot(rec: Recommendation) -> dict[str, Any]:
    """The recommendation's full state (responses, bodies and priorities must be loaded)."""
    return snapshot_from(
        {name: getattr(rec, name) for name in COLUMNS},
        [response_dict(e) for e in rec.responses],
        [{"name": b.name, "role": b.role} for b in rec.responsible_bodies],
        [{"term": p.term, "set_by": p.set_by, "note": p.note} for p in rec.priorities],
    )


def summary(rec: Recommendation) -> dict[str, Any]:
    """A list item, from the row's own columns only."""
    return {
        "id": rec.id,
        "mechanism": rec.mechanism,
        "number": rec.number,
        "text": rec.text,
        "cycle": rec.cycle,
        "state_under_review": rec.state_under_review,
        "response": rec.response_position,
        "recommending_states": [_country_ref(c) for c in rec.recommending_states],
        "issues": list(rec.issues),
        "action_category": rec.action_category,
        "action_category_suggested": rec.action_category_suggested,
        "created_at": rec.created_at,
        "updated_at": rec.updated_at,
    }


async def load(session: AsyncSession, recommendation_id: str) -> Recommendation:
    """A fully loaded recommendation, or RecommendationNotFound."""
    rec = await queries.get_full(session, recommendation_id)
    if rec is None:
        raise RecommendationNotFound(
            f"no recommendation with id {recommendation_id!r}", field="path.recommendation_id"
        )
    return rec


async def reload(session: AsyncSession, rec_id: str) -> Recommendation:
    """Flush pending changes and load the recommendation afresh with its related rows."""
    await session.flush()
    rec = await queries.get_full(session, rec_id, refresh=True)
    assert rec is not None
    return rec


async def set_links(
    session: AsyncSession, rec_id: str, states: list[str], issues: list[str]
) -> None:
    await session.execute(
        delete(RecommendingState).where(RecommendingState.recommendation_id == rec_id)
    )
    await session.execute(
        delete(RecommendationIssue).where(RecommendationIssue.recommendation_id == rec_id)
    )
    if states:
        await session.execute(
            insert(RecommendingState),
            [{"recommendation_id": rec_id, "iso3": s} for s in states],
        )
    if issues:
        await session.execute(
            insert(RecommendationIssue),
            [{"recommendation_id": rec_id, "issue": i} for i in issues],
        )


async def create(session: AsyncSession, data: RecommendationCreate) -> Recommendation:
    """Add a recommendation and record its created event."""
    rec_id = recommendation_id(
        mechanism=data.mechanism,
        state_under_review=data.state_under_review,
        cycle=data.cycle,
        number=data.number,
        body=data.body,
        document=data.document,
        text=data.text,
        recommending_states=data.recommending_states,
    )
    if await session.get(Recommendation, rec_id) is not None:
        raise RecommendationExists(f"recommendation {rec_id!r} exists already", field="body")
    category, suggested = data.action_category, False
    if category is None:
        category = suggest_action_category(data.text)
        suggested = category is not None
    now = utcnow()
    rec = Recommendation(
        id=rec_id,
        mechanism=data.mechanism,
        body=data.body.upper() if data.body else None,
        document=data.document,
        number=data.number,
        paragraph=data.paragraph,
        text=data.text,
        cycle=data.cycle,
        session=data.session,
        review_date=data.review_date,
        state_under_review=data.state_under_review,
        recommending_states=data.recommending_states,
        response_position=data.responses[-1].position if data.responses else None,
        issues=data.issues,
        action_category=category,
        action_category_suggested=suggested,
        affected_groups=data.affected_groups,
        sdg_goals=data.sdg_goals,
        sort_key=sort_key(data.state_under_review, data.cycle, data.number, rec_id),
        version=1,
        created_at=now,
        updated_at=now,
    )
    session.add(rec)
    await session.flush()
    for response in data.responses:
        session.add(
            ResponseEvent(recommendation_id=rec_id, recorded_at=now, **response.model_dump())
        )
    await set_links(session, rec_id, data.recommending_states, data.issues)
    rec = await reload(session, rec_id)
    record_event(
        session,
        RecommendationCreated.model_validate({"recommendation": snapshot(rec)}),
        source=SOURCE,
        subject=rec_id,
    )
    return rec


def _touch(rec: Recommendation) -> None:
    rec.version += 1
    rec.updated_at = utcnow()


LIST_FIELDS = ("issues", "affected_groups", "sdg_goals")


async def update(
    session: AsyncSession, rec: Recommendation, data: RecommendationUpdate
) -> tuple[Recommendation, list[str]]:
    """Change descriptive fields; records an updated event when anything changed."""
    changes = data.model_dump(exclude_unset=True)
    for name in ("text", "recommending_states"):
        if name in changes and changes[name] is None:
            raise InvalidValue(f"{name} cannot be emptied", field=f"body.{name}")
    for name in LIST_FIELDS:
        if name in changes and changes[name] is None:
            changes[name] = []
    if rec.number is None and (
        ("text" in changes and changes["text"] != rec.text)
        or (
            "recommending_states" in changes
            and sorted(changes["recommending_states"]) != sorted(rec.recommending_states)
        )
    ):
        raise InvalidValue(
            f"the id {rec.id} derives from this recommendation's text and States; "
            "create a new recommendation instead",
            field="body.text",
        )
    if rec.mechanism != "upr" and "document" in changes and changes["document"] != rec.document:
        raise InvalidValue(
            f"the id {rec.id} derives from its document; create a new recommendation instead",
            field="body.document",
        )
    changed: list[str] = []
    for name, value in changes.items():
        if name in {"recommending_states", "issues"}:
            value = list(dict.fromkeys(value))
        if getattr(rec, name) != value:
            setattr(rec, name, value)
            changed.append(name)
    if "action_category" in changed:
        rec.action_category_suggested = False
    if not changed:
        return rec, []
    if "recommending_states" in changed or "issues" in changed:
        await set_links(session, rec.id, rec.recommending_states, rec.issues)
    _touch(rec)
    rec = await reload(session, rec.id)
    record_event(
        session,
        RecommendationUpdated.model_validate(
            {"recommendation": snapshot(rec), "changed_fields": changed}
        ),
        source=SOURCE,
        subject=rec.id,
    )
    return rec, changed


async def append_response(
    session: AsyncSession, rec: Recommendation, response: ResponseIn
) -> Recommendation:
    """Append a response to the history; the latest one becomes the current response."""
    previous = response_dict(rec.responses[-1]) if rec.responses else None
    session.add(
        ResponseEvent(recommendation_id=rec.id, recorded_at=utcnow(), **response.model_dump())
    )
    rec.response_position = response.position
    _touch(rec)
    rec = await reload(session, rec.id)
    record_event(
        session,
        RecommendationResponseChanged(
            recommendation=snapshot(rec),  # type: ignore[arg-type]
            previous=ResponseSnapshot.model_validate(previous) if previous else None,
        ),
        source=SOURCE,
        subject=rec.id,
    )
    return rec


async def assign(session: AsyncSession, rec: Recommendation, data: AssignmentIn) -> Recommendation:
    """Replace the set of responsible bodies."""
    await session.execute(
        delete(ResponsibleBody).where(ResponsibleBody.recommendation_id == rec.id)
    )
    for position, body in enumerate(data.responsible_bodies):
        session.add(
            ResponsibleBody(
                recommendation_id=rec.id, name=body.name, role=body.role, position=position
            )
        )
    _touch(rec)
    rec = await reload(session, rec.id)
    record_event(
        session,
        RecommendationAssigned.model_validate({"recommendation": snapshot(rec)}),
        source=SOURCE,
        subject=rec.id,
    )
    return rec


async def prioritise(
    session: AsyncSession, rec: Recommendation, data: PriorityIn
) -> Recommendation:
    """Set (or replace) the priority a named group gives a recommendation."""
    await session.execute(
        delete(Priority).where(Priority.recommendation_id == rec.id, Priority.set_by == data.set_by)
    )
    session.add(Priority(recommendation_id=rec.id, set_at=utcnow(), **data.model_dump()))
    _touch(rec)
    rec = await reload(session, rec.id)
    record_event(
        session,
        RecommendationPrioritised.model_validate({"recommendation": snapshot(rec)}),
        source=SOURCE,
        subject=rec.id,
    )
    return rec


def _words(text: str) -> frozenset[str]:
    return frozenset(
        w[:7] for w in _WORD.findall(text.casefold()) if w not in _STOPWORDS and len(w) > 2
    )


def similarity(a: frozenset[str], b: frozenset[str]) -> float:
    """Dice overlap of two word sets, 0 to 1."""
    return 2 * len(a & b) / (len(a) + len(b)) if a and b else 0.0


async def similar(
    session: AsyncSession, rec: Recommendation, *, limit: int, threshold: float
) -> list[tuple[tuple[str, str | None, str, list[str]], float]]:
    """Recommendations to the same State whose wording overlaps most with this one."""
    target = _words(rec.text)
    scored = []
    for row in await queries.texts_for_state(session, rec.state_under_review):
        if row[0] == rec.id:
            continue
        score = similarity(target, _words(row[2]))
        if score >= threshold:
            scored.append((row, round(score, 3)))
    scored.sort(key=lambda item: (-item[1], item[0][0]))
    return scored[:limit]


async def recompute_clusters(
    session: AsyncSession, state_under_review: str, *, threshold: float = 0.6
) -> int:
    """Group near-duplicate recommendations to one State; returns how many changed cluster.

    A cluster is named after its first member's id; a recommendation alike to none has none.
    """
    rows = await queries.texts_for_state(session, state_under_review)
    words = [_words(text) for _, _, text, _ in rows]
    parent = list(range(len(rows)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(rows)):
        for j in range(i + 1, len(rows)):
            if similarity(words[i], words[j]) >= threshold:
                parent[find(i)] = find(j)
    groups: dict[int, list[str]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(find(i), []).append(row[0])
    wanted = {
        rec_id: (min(members) if len(members) > 1 else None)
        for members in groups.values()
        for rec_id in members
    }
    changed = 0
    for rec_id, cluster_id in sorted(wanted.items()):
        rec = await load(session, rec_id)
        if rec.cluster_id != cluster_id:
            _, fields = await update(
                session, rec, RecommendationUpdate.model_validate({"cluster_id": cluster_id})
            )
            changed += bool(fields)
    return changed
