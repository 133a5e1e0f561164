"""The monitoring service: create_app wires the database, the bus, the relay and consumers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from services.monitoring.consumers import CATALOG_CONSUMER, CATALOG_EVENTS, apply_catalog_event
from services.monitoring.routes import router
from services.monitoring.settings import MonitoringSettings
from shared.auth import keys_router
from shared.http import install_plumbing
from shared.inbox import idempotent
from shared.service import run_service

MIGRATIONS = Path(__file__).parent / "migrations"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with run_service(app, client_name="upr-monitoring", migrations=MIGRATIONS) as bus:
        app.state.catalog_consumer = bus.consume(
            CATALOG_CONSUMER,
            CATALOG_EVENTS,
            idempotent(app.state.session_factory, CATALOG_CONSUMER, apply_catalog_event),
        )
        yield


def create_app(settings: MonitoringSettings | None = None) -> FastAPI:
    """The monitoring service's FastAPI application."""
    settings = settings or MonitoringSettings()
    app = FastAPI(
        title="UPR Tracker: monitoring",
        version="0.1.0",
        summary="Implementation status, assessments, evidence, indicators and deadlines",
        description=(
            "Reads are public except restricted evidence. Writes need "
            "`Authorization: Bearer <API key>`: an assessor key writes for its own "
            "organisation only; editors verify evidence and set deadlines. Changes are "
            "published on NATS as `upr.monitoring.*` events carrying the recommendation."
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_plumbing(app, max_body_bytes=settings.max_body_bytes, service="monitoring")
    app.include_router(router)
    app.include_router(keys_router())
    return app
