"""Audit log: every successful write through the API or the `upr` command line, in the same
transaction as the write.

Who (key id and role; `operator` and the system user for the command line), when, method, path,
target and what changed: the request body and query (or the command's options) with personal
data and secrets masked, and the rows the unit of work created, changed or deleted.
"""

from __future__ import annotations

import getpass
import json
import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import BigInteger, Index, Integer, String, event, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, Session, mapped_column

from shared.auth import AUTH_ERRORS, AdminKey
from shared.db import JSONType, PlumbingBase, UTCDateTime, utcnow
from shared.http import WRITE_METHODS, InvalidValue, SessionDep, problem_responses

CHANGES_KEY = "audit_changes"
REDACTED = "[redacted]"
# Field names whose values are personal data or secrets: never written to the audit log.
SENSITIVE = frozenset(
    {
        "email",
        "phone",
        "webhook_url",
        "webhook_secret",
        "secret",
        "token",
        "code",
        "key",
        "key_hash",
        "password",
        "submitter_name",
        "name",
        "address",
        "to",
    }
)
SENSITIVE_PARTS = ("secret", "token", "password", "email", "phone", "code", "hash")
UNAUDITED_TABLES = frozenset({"outbox", "inbox", "audit_log"})
MAX_TEXT = 200
MAX_ITEMS = 50
MAX_JSON_BODY = 64 * 1024
MAX_CHANGED_ROWS = 100
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# International numbers, and local ones written in groups (012 345 678); not dates or amounts.
_PHONE = re.compile(r"\+\d[\d ().-]{6,}\d|\b0\d{1,2}[ .]\d{3}[ .]\d{3,4}\b")


class AuditEntry(PlumbingBase):
    """One write: who, when, what."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_at", "at"),
        Index("ix_audit_log_key_id_at", "key_id", "at"),
    )

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    key_id: Mapped[str | None] = mapped_column(String(32))
    role: Mapped[str | None] = mapped_column(String(20))
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(500))
    target: Mapped[str | None] = mapped_column(String(300))
    request_id: Mapped[str | None] = mapped_column(String(64))
    changes: Mapped[dict[str, Any]] = mapped_column(JSONType)


def is_sensitive(field: str) -> bool:
    """Whether a field's value is personal data or a secret."""
    name = field.lower()
    return name in SENSITIVE or any(part in name for part in SENSITIVE_PARTS)


def mask(value: Any, field: str | None = None) -> Any:
    """A JSON value with secrets and personal data masked and long texts and lists cut."""
    if field is not None and is_sensitive(field) and value not in (None, "", [], {}):
        return REDACTED
    if isinstance(value, dict):
        return {str(k): mask(v, str(k)) for k, v in list(value.items())[:MAX_ITEMS]}
    if isinstance(value, list | tuple):
        items = [mask(v) for v in list(value)[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            items.append(f"... {len(value) - MAX_ITEMS} more")
        return items
    if isinstance(value, str):
        text = _PHONE.sub("[phone]", _EMAIL.sub("[email]", value))
        return text if len(text) <= MAX_TEXT else f"{text[:MAX_TEXT]}... ({len(text)} chars)"
    if value is None or isinstance(value, bool | int | float):
        return value
    return mask(str(value))


async def _body_summary(request: Request) -> Any:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in {"multipart/form-data", "application/x-www-form-urlencoded"}:
        form = await request.form()  # parsed (and cached) by the route already
        fields: dict[str, Any] = {}
        for name, value in form.multi_items():
            if isinstance(value, str):
                fields[name] = mask(value, name)
            else:
                fields[name] = {
                    "file": mask(value.filename or ""),
                    "type": value.content_type,
                    "bytes": value.size,
                }
        return fields
    body = await request.body()
    if not body:
        return None
    if content_type.endswith("json") and len(body) <= MAX_JSON_BODY:
        try:
            return mask(json.loads(body))
        except ValueError:
            pass
    return {"content_type": content_type or None, "bytes": len(body)}


def _row_id(obj: Any) -> str:
    state = inspect(obj)
    identity = state.identity or state.mapper.primary_key_from_instance(obj)
    return f"{state.mapper.local_table.name}:{'/'.join(str(part) for part in identity)}"


@event.listens_for(Session, "after_flush")
def _collect_changes(session: Session, _flush_context: Any) -> None:
    changes = session.info.get(CHANGES_KEY)
    if changes is None:
        return
    for kind, objects in (
        ("created", session.new),
        ("updated", session.dirty),
        ("deleted", session.deleted),
    ):
        for obj in objects:
            state = inspect(obj)
            if state.mapper.local_table.name in UNAUDITED_TABLES:
                continue
            rows = changes.setdefault(kind, {})
            if len(rows) >= MAX_CHANGED_ROWS:
                continue
            row = _row_id(obj)
            if kind != "updated":
                rows.setdefault(row, None)
                continue
            fields = {
                attr.key: mask(attr.history.added[-1] if attr.history.added else None, attr.key)
                for attr in state.attrs
                if attr.history.has_changes()
            }
            if fields:
                rows.setdefault(row, {}).update(fields)


def start(session: AsyncSession, request: Request) -> None:
    """Collect what a write request's unit of work changes."""
    if request.method in WRITE_METHODS:
        session.info[CHANGES_KEY] = {}


async def record_write(session: AsyncSession, request: Request) -> None:
    """Add the audit entry of a successful write to its own transaction."""
    if request.method not in WRITE_METHODS:
        return
    await session.flush()  # what the route left pending counts as changed too
    rows = session.info.pop(CHANGES_KEY, None) or {}
    principal = getattr(request.state, "principal", None)
    try:
        body = await _body_summary(request)
    except Exception:  # the entry is still written, without the body
        body = {"unreadable": True}
    params = request.query_params
    query = {
        k: mask(values[0] if len(values) == 1 else values, k)
        for k in params
        for values in [params.getlist(k)]
    }
    changes: dict[str, Any] = {"body": body, "query": query or None}
    for kind, values in rows.items():
        changes[kind] = values if kind == "updated" else list(values)
    target = "/".join(str(v) for v in request.path_params.values())
    session.add(
        AuditEntry(
            at=utcnow(),
            key_id=principal.key_id if principal else None,
            role=principal.role if principal else ("link" if "token" in query else "anonymous"),
            method=request.method,
            path=request.url.path[:500],
            target=target[:300] or None,
            request_id=getattr(request.state, "request_id", None),
            changes=changes,
        )
    )
    await session.flush()


def start_command(session: AsyncSession) -> None:
    """Collect what a command-line write's unit of work changes."""
    session.info[CHANGES_KEY] = {}


async def record_command(
    session: AsyncSession, command: str, *, target: str | None, options: dict[str, Any]
) -> None:
    """Add the audit entry of a command-line write (`upr keys create`...) to its transaction."""
    await session.flush()
    rows = session.info.pop(CHANGES_KEY, None) or {}
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container's arbitrary user)
        user = None
    changes: dict[str, Any] = {
        "options": {k: mask(v, k) for k, v in options.items() if v is not None},
        "system_user": user,
    }
    for kind, values in rows.items():
        changes[kind] = values if kind == "updated" else list(values)
    session.add(
        AuditEntry(
            at=utcnow(),
            key_id=None,
            role="operator",
            method="CLI",
            path=command[:500],
            target=target[:300] if target else None,
            request_id=None,
            changes=changes,
        )
    )
    await session.flush()


class AuditEntryOut(BaseModel):
    seq: int
    at: datetime
    key_id: str | None = Field(description="The API key's id; null for the command line")
    role: str | None = Field(
        description="The key's role; bootstrap, anonymous or link for self-service; operator "
        "for the command line"
    )
    method: str = Field(description="The HTTP method, or CLI for an `upr` command")
    path: str = Field(description="The request path, or the command (`upr keys create`)")
    target: str | None = Field(description="The ids in the path, or what the command wrote")
    request_id: str | None
    changes: dict[str, Any] = Field(
        description="body and query (masked) of a request, or options and system_user of a "
        "command; then the rows created, updated (new values, masked) and deleted"
    )


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    next_before: int | None = Field(description="Pass as `before` for the next page")


def audit_router() -> APIRouter:
    """GET /v1/audit: the audit log, newest first, for admins."""
    router = APIRouter(prefix="/v1/audit", tags=["audit"])

    @router.get(
        "",
        summary="The audit log of writes, newest first (admin)",
        description="Every successful write through the API, and those of the `upr` command "
        "line (import, keys create, keys revoke), recorded in the write's own transaction.",
        responses={**AUTH_ERRORS, **problem_responses(InvalidValue)},
    )
    async def list_audit(
        request: Request,
        _: AdminKey,
        session: SessionDep,
        key_id: Annotated[str | None, Query(max_length=32)] = None,
        since: Annotated[datetime | None, Query(description="From this time (inclusive)")] = None,
        until: Annotated[datetime | None, Query(description="Before this time")] = None,
        before: Annotated[int | None, Query(ge=1, description="next_before of a page")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> AuditPage:
        for name, value in (("since", since), ("until", until)):
            if value is not None and value.tzinfo is None:
                raise InvalidValue(f"{name} needs a time zone (e.g. Z)", field=f"query.{name}")
        stmt = select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(limit + 1)
        if key_id is not None:
            stmt = stmt.where(AuditEntry.key_id == key_id)
        if since is not None:
            stmt = stmt.where(AuditEntry.at >= since)
        if until is not None:
            stmt = stmt.where(AuditEntry.at < until)
        if before is not None:
            stmt = stmt.where(AuditEntry.seq < before)
        rows = list(await session.scalars(stmt))
        return AuditPage(
            items=[AuditEntryOut.model_validate(r, from_attributes=True) for r in rows[:limit]],
            next_before=rows[limit - 1].seq if len(rows) > limit else None,
        )

    return router
