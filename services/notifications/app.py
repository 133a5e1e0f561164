"""The notifications service: consumers, dispatcher and scheduler wired in the lifespan."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.orm import Session

from services.notifications import channels, digests, reminders, routing
from services.notifications.consumers import CONSUMER, EVENT_TYPES, make_handler
from services.notifications.deliveries import Dispatcher
from services.notifications.routes import router
from services.notifications.settings import NotificationsSettings
from shared.auth import keys_router
from shared.db import utcnow
from shared.http import install_plumbing
from shared.inbox import idempotent
from shared.metrics import observe_delivery
from shared.service import run_service

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
DISPATCH_WAKE = "dispatcher_wake"


class Clock:
    """Now, with an offset tests (and drills) can move forward; the database holds the truth."""

    def __init__(self) -> None:
        self.offset = dt.timedelta(0)

    def now(self) -> dt.datetime:
        return utcnow() + self.offset


@event.listens_for(Session, "after_commit")
def _after_deliveries_committed(session: Session) -> None:
    # Skipped deliveries are counted once committed, so the metrics agree with the delivery log.
    for channel in session.info.pop(routing.SKIPPED_KEY, []):
        observe_delivery(channel, "skipped")
    wake = session.info.get(DISPATCH_WAKE)
    if session.info.pop("deliveries_added", False) and wake is not None:
        wake()


@event.listens_for(Session, "after_rollback")
def _forget_skipped(session: Session) -> None:
    session.info.pop(routing.SKIPPED_KEY, None)


async def tick_reminders(app: FastAPI) -> None:
    """Turn due reminders into deliveries."""
    async with app.state.session_factory() as session, session.begin():
        await reminders.send_due(session, app.state.clock.now())


async def tick_digests(app: FastAPI) -> None:
    """Send the digests whose period has ended."""
    settings: NotificationsSettings = app.state.settings
    async with app.state.session_factory() as session, session.begin():
        await digests.send_due(session, app.state.clock.now(), settings.digest_hour)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: NotificationsSettings = app.state.settings
    async with run_service(app, client_name="upr-notifications", migrations=MIGRATIONS) as bus:
        email = channels.EmailChannel(settings)
        sms = channels.sms_channel(settings)
        webhook = channels.WebhookChannel(settings)
        dispatcher = Dispatcher(
            app.state.session_factory,
            settings,
            app.state.clock.now,
            email=email,
            sms=sms,
            webhook=webhook,
        )
        app.state.dispatcher = dispatcher
        app.state.session_factory.kw.setdefault("info", {})[DISPATCH_WAKE] = dispatcher.wake
        dispatcher.start()
        scheduler = AsyncIOScheduler(timezone="UTC")
        scheduler.add_job(dispatcher.wake, "interval", seconds=settings.dispatch_interval_s)
        scheduler.add_job(tick_reminders, "interval", seconds=30, args=[app], max_instances=1)
        scheduler.add_job(tick_digests, "interval", seconds=300, args=[app], max_instances=1)
        scheduler.start()
        app.state.scheduler = scheduler
        bus.consume(
            CONSUMER,
            EVENT_TYPES,
            idempotent(
                app.state.session_factory, CONSUMER, make_handler(settings, app.state.clock.now)
            ),
        )
        try:
            yield
        finally:
            scheduler.shutdown(wait=False)
            await dispatcher.stop()
            for transport in (email, sms, webhook):
                await transport.close()


def create_app(settings: NotificationsSettings | None = None) -> FastAPI:
    """The notifications service's FastAPI application."""
    settings = settings or NotificationsSettings()
    app = FastAPI(
        title="UPR Tracker: notifications",
        version="0.1.0",
        summary="Subscriptions, reminders, and e-mail and SMS that arrive once",
        description=(
            "Recipients, subscriptions and the delivery log need an API key (editor; only "
            "admins see addresses). Self-service subscribe, confirm, unsubscribe and "
            "preferences work through signed links, without an account."
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.clock = Clock()
    install_plumbing(app, max_body_bytes=settings.max_body_bytes, service="notifications")
    app.include_router(router)
    app.include_router(keys_router())
    return app
