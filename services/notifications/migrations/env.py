"""Alembic environment of notifications (connection from shared.migrate, or URL from settings)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

import shared.audit
import shared.auth
import shared.inbox
import shared.outbox  # noqa: F401 - registers the plumbing tables
from services.notifications.models import Base
from shared.db import PlumbingBase, create_engine

target_metadata = [Base.metadata, PlumbingBase.metadata]


def run_with(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_online() -> None:
    from services.notifications.settings import NotificationsSettings

    url = context.config.get_main_option("sqlalchemy.url") or NotificationsSettings().database_url
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(run_with)
    await engine.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    run_with(connection)
else:
    asyncio.run(run_online())
