"""Catalog and monitoring events: route them to recipients, track deadlines for reminders."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession

from services.notifications import reminders, routing
from services.notifications.settings import NotificationsSettings
from shared.bus import PermanentEventError
from shared.events import Envelope

CONSUMER = "notifications"
EVENT_TYPES = tuple(sorted(routing.USER_EVENT_TYPES))


def make_handler(settings: NotificationsSettings, clock: Callable[[], dt.datetime]):
    """The event handler (wrapped by the inbox, so each event has one effect)."""

    async def handle(session: AsyncSession, envelope: Envelope) -> None:
        now = clock()
        try:
            envelope.payload()
        except Exception as exc:
            raise PermanentEventError(f"cannot read {envelope.type}: {exc}") from exc
        if envelope.type == "upr.monitoring.deadline.set":
            await reminders.on_deadline_set(session, envelope, settings, now)
        elif envelope.type == "upr.monitoring.deadline.met":
            await reminders.on_deadline_met(session, envelope, now)
        await routing.route(session, envelope, now)

    return handle
