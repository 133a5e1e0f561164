"""The catalog service: create_app wires the database, the bus and the outbox relay."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy import func, select

from services.catalog import formats, imports, queries, recommendations
from services.catalog.models import Recommendation
from services.catalog.routes import router
from services.catalog.settings import CatalogSettings
from shared.auth import keys_router
from shared.http import install_plumbing
from shared.service import run_service

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
DEMO_FILE = Path(__file__).parent / "demo" / "cambodia_upr2_2014_recommendations.csv"


async def seed_demo(app: FastAPI) -> None:
    """Import Cambodia's 2nd-cycle recommendations when the catalog is empty."""
    async with app.state.session_factory() as session:
        count = await session.scalar(select(func.count()).select_from(Recommendation))
        if count:
            return
        rows = list(formats.read_positions_csv(formats.decode_upload(DEMO_FILE.read_bytes())))
        report = await imports.run_import(
            session, rows, fmt="positions-csv", atomic=True, filename=DEMO_FILE.name
        )
        await recommendations.recompute_clusters(session, "KHM")
        await session.commit()
    log.info("seeded the demo set: %d recommendations", report.created)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with run_service(
        app,
        client_name="upr-catalog",
        migrations=MIGRATIONS,
        database_server_settings=queries.SERVER_SETTINGS,
    ):
        if app.state.settings.seed_demo:
            await seed_demo(app)
        yield


def create_app(settings: CatalogSettings | None = None) -> FastAPI:
    """The catalog's FastAPI application."""
    settings = settings or CatalogSettings()
    app = FastAPI(
        title="UPR Tracker: catalog",
        version="0.1.0",
        summary="Recommendations from the UPR, treaty bodies and special procedures",
        description=(
            "Reads are public. Writes need `Authorization: Bearer <API key>` with the editor "
            "or admin role. Every change is published on NATS as a `upr.catalog.*` event. "
            "Errors are `application/problem+json` naming the offending field."
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_plumbing(app, max_body_bytes=settings.max_body_bytes, service="catalog")
    app.include_router(router)
    app.include_router(keys_router())
    return app
