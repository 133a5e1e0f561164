"""Processed-event table: a redelivered event has no second effect."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy import String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from shared.bus import EnvelopeHandler
from shared.db import PlumbingBase, UTCDateTime, utcnow
from shared.events import Envelope

SessionHandler = Callable[[AsyncSession, Envelope], Awaitable[None]]


class ProcessedEvent(PlumbingBase):
    """One row per (consumer, event) handled."""

    __tablename__ = "inbox"

    consumer: Mapped[str] = mapped_column(String(100), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(120))
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


async def already_processed(session: AsyncSession, consumer: str, event_id: str) -> bool:
    """Whether this consumer has handled this event before."""
    found = await session.scalar(
        select(ProcessedEvent.event_id).where(
            ProcessedEvent.consumer == consumer, ProcessedEvent.event_id == event_id
        )
    )
    return found is not None


def idempotent(
    session_factory: async_sessionmaker[AsyncSession], consumer: str, handle: SessionHandler
) -> EnvelopeHandler:
    """Wrap a handler so its effect and the inbox row commit together, once per event."""

    async def handler(envelope: Envelope) -> None:
        try:
            async with session_factory() as session, session.begin():
                if await already_processed(session, consumer, envelope.id):
                    return
                session.add(
                    ProcessedEvent(
                        consumer=consumer, event_id=envelope.id, event_type=envelope.type
                    )
                )
                await session.flush()
                await handle(session, envelope)
        except IntegrityError:
            # Another replica handled the same event concurrently: its commit won.
            async with session_factory() as session:
                if await already_processed(session, consumer, envelope.id):
                    return
            raise

    return handler
