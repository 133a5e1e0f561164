"""Transactional outbox: events are rows written with the state change, then relayed to NATS."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text, event, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, Session, mapped_column

from shared.bus import Bus
from shared.db import (
    JSONText,
    JSONType,
    PlumbingBase,
    UTCDateTime,
    bulk_insert,
    is_postgres,
    utcnow,
)
from shared.events import Envelope, EventData

log = logging.getLogger(__name__)

PENDING_KEY = "outbox_pending"
WAKE_KEY = "outbox_wake"


class OutboxMessage(PlumbingBase):
    """An event waiting to be published (published_at empty) or kept for replay."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index(
            "ix_outbox_unpublished",
            "seq",
            postgresql_where=text("published_at IS NULL"),
            sqlite_where=text("published_at IS NULL"),
        ),
    )

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    event_type: Mapped[str] = mapped_column(String(120))
    subject: Mapped[str | None] = mapped_column(String(200))
    envelope: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


def _row(envelope: Envelope) -> dict[str, Any]:
    return {
        "event_id": envelope.id,
        "event_type": envelope.type,
        "subject": envelope.subject,
        "envelope": envelope.model_dump(mode="json"),
        "created_at": envelope.time,
        "attempts": 0,
    }


def record_event(
    session: AsyncSession,
    data: EventData,
    *,
    source: str,
    subject: str | None,
    traceparent: str | None = None,
) -> Envelope:
    """Add an event to the session's transaction; it is published only once that commits."""
    envelope = Envelope.wrap(data, source=source, subject=subject, traceparent=traceparent)
    session.add(OutboxMessage(**_row(envelope)))
    session.info[PENDING_KEY] = True
    return envelope


async def record_events_bulk(session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
    """Add many events to the session's transaction in one round trip (COPY on PostgreSQL).

    Each envelope is serialised once, by pydantic, straight to the JSON text the column stores.
    """
    if not envelopes:
        return
    rows = [
        {
            "event_id": e.id,
            "event_type": e.type,
            "subject": e.subject,
            "envelope": JSONText(e.model_dump_json()),
            "created_at": e.time,
            "attempts": 0,
        }
        for e in envelopes
    ]
    await bulk_insert(session, OutboxMessage.__table__, rows)
    session.info[PENDING_KEY] = True


@event.listens_for(Session, "after_commit")
def _wake_relay_after_commit(session: Session) -> None:
    wake = session.info.get(WAKE_KEY)
    if session.info.pop(PENDING_KEY, False) and wake is not None:
        wake()


async def outbox_backlog(session: AsyncSession) -> tuple[int, datetime | None]:
    """How many events wait to be published, and when the oldest was written."""
    row = (
        await session.execute(
            select(func.count(), func.min(OutboxMessage.created_at)).where(
                OutboxMessage.published_at.is_(None)
            )
        )
    ).one()
    oldest = row[1]
    if oldest is not None and oldest.tzinfo is None:
        from datetime import UTC

        oldest = oldest.replace(tzinfo=UTC)
    return int(row[0]), oldest


class OutboxRelay:
    """Publishes unpublished outbox rows in order and marks them published."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        bus: Bus,
        *,
        batch_size: int = 500,
        poll_interval: float = 1.0,
    ) -> None:
        self.session_factory = session_factory
        self.bus = bus
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.published = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        session_factory.kw.setdefault("info", {})[WAKE_KEY] = self.wake

    def wake(self) -> None:
        """Ask the relay to look for new rows now rather than at the next poll."""
        self._wake.set()

    def start(self) -> None:
        """Run the relay loop in the background."""
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        """Stop the loop; unpublished rows stay for the next start."""
        if self._task is not None:
            self._stopping = True
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def run_once(self) -> tuple[int, int]:
        """Publish one batch; return (published, failed)."""
        async with self.session_factory() as session, session.begin():
            stmt = (
                select(OutboxMessage.seq, OutboxMessage.envelope)
                .where(OutboxMessage.published_at.is_(None))
                .order_by(OutboxMessage.seq)
                .limit(self.batch_size)
            )
            if is_postgres(session.bind):
                stmt = stmt.with_for_update(skip_locked=True)
            rows = (await session.execute(stmt)).all()
            if not rows:
                return 0, 0
            outcomes = await self.bus.publish_many(
                [Envelope.model_validate(envelope) for _, envelope in rows]
            )
            done = [seq for (seq, _), o in zip(rows, outcomes, strict=True) if o.ok]
            failed = [
                (seq, o.error) for (seq, _), o in zip(rows, outcomes, strict=True) if not o.ok
            ]
            if done:
                await session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.seq.in_(done))
                    .values(published_at=utcnow(), attempts=OutboxMessage.attempts + 1)
                )
            if failed:
                error = repr(failed[0][1])[:1000]
                await session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.seq.in_([seq for seq, _ in failed]))
                    .values(attempts=OutboxMessage.attempts + 1, last_error=error)
                )
            self.published += len(done)
            return len(done), len(failed)

    async def drain(self, timeout: float = 30.0) -> None:
        """Publish until nothing is left (used at shutdown and in tests)."""
        async with asyncio.timeout(timeout):
            while True:
                published, failed = await self.run_once()
                if published == 0 and failed == 0:
                    return
                if failed:
                    await asyncio.sleep(0.2)

    async def _run(self) -> None:
        delay = self.poll_interval
        while not self._stopping:
            try:
                published, failed = await self.run_once()
                if failed:
                    log.warning("outbox: %d events not acknowledged; will retry", failed)
                    delay = min(max(delay * 2, 0.2), 5.0)
                    # The stream may be missing: never created (a cluster still electing its
                    # leader when the service started) or deleted by an operator.
                    with contextlib.suppress(Exception):
                        await self.bus.ensure_streams()
                else:
                    delay = self.poll_interval
                    if published >= self.batch_size:
                        continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox relay error: %r", exc)
                delay = min(max(delay * 2, 0.2), 5.0)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            self._wake.clear()
