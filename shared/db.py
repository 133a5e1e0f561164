"""Async SQLAlchemy engines and sessions (asyncpg for PostgreSQL, aiosqlite for SQLite)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, DateTime, MetaData, TypeDecorator, event, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON().with_variant(JSONB(), "postgresql")
_PG = postgresql.dialect()


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class PlumbingBase(DeclarativeBase):
    """Tables every service database holds: outbox, inbox, API keys."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def is_postgres(bind: Any) -> bool:
    """Whether an engine, connection or session talks to PostgreSQL."""
    return bind.dialect.name == "postgresql"


def create_engine(
    url: str,
    *,
    pool_size: int = 20,
    max_overflow: int = 10,
    server_settings: dict[str, str] | None = None,
) -> AsyncEngine:
    """An async engine with sane defaults for the URL's backend.

    PostgreSQL: pool_size connections kept open, up to max_overflow more under bursts. The
    default matches a closed loop of 20 concurrent list requests without queueing for a
    connection. server_settings are set on each connection as it opens (ignored on SQLite).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = _create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return _create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={"server_settings": server_settings} if server_settings else {},
    )


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


async def ping(engine: AsyncEngine, timeout: float = 2.0) -> None:
    """Raise if the database does not answer a trivial query in time."""
    async with asyncio.timeout(timeout), engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


@asynccontextmanager
async def session_scope(
    factory: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit when the block succeeds, roll back otherwise."""
    async with factory() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


class JSONText(str):
    """A value already serialised as JSON text, for a JSON column: bulk_insert sends it as is."""

    __slots__ = ()


async def bulk_insert(session: AsyncSession, table: Any, rows: list[dict[str, Any]]) -> None:
    """Insert many rows in the session's transaction: COPY on PostgreSQL, executemany elsewhere.

    A JSON column's value is serialised with json.dumps, unless it is a JSONText already.
    """
    if not rows:
        return
    if not is_postgres(session.bind):
        await session.execute(table.insert(), [_decoded(row) for row in rows])
        return
    columns = list(rows[0])
    json_columns = {
        name for name in columns if isinstance(table.c[name].type.dialect_impl(_PG), JSONB)
    }
    if json_columns:
        records = [
            tuple(_json_text(row[name]) if name in json_columns else row[name] for name in columns)
            for row in rows
        ]
    else:
        records = [tuple(row[name] for name in columns) for row in rows]
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
        table.name, records=records, columns=columns
    )


def _json_text(value: Any) -> str | None:
    if value is None or isinstance(value, JSONText):
        return value
    return json.dumps(value)


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    """The row with JSONText values parsed back (SQLAlchemy's JSON type serialises them)."""
    if not any(isinstance(value, JSONText) for value in row.values()):
        return row
    return {
        name: json.loads(value) if isinstance(value, JSONText) else value
        for name, value in row.items()
    }
