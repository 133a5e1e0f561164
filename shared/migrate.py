"""Run a service's Alembic migrations on its engine (one runner at a time on PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import is_postgres

MIGRATION_LOCK = 7_114_201_4


def alembic_config(script_location: Path, url: str | None = None) -> Config:
    """An Alembic configuration for one service's migrations folder."""
    config = Config()
    config.set_main_option("script_location", str(script_location))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


async def upgrade(engine: AsyncEngine, script_location: Path, revision: str = "head") -> None:
    """Apply migrations up to a revision; replicas starting together take turns."""
    config = alembic_config(script_location)

    def run(connection: Any) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with engine.begin() as conn:
        if is_postgres(conn):
            await conn.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
        await conn.run_sync(run)
