"""Where the tests find PostgreSQL and NATS: env URLs, testcontainers, or local servers."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import asyncpg

from cli.nats_server import NatsServer, port_open

LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_NATS = "nats://127.0.0.1:4222"


def docker_available() -> bool:
    """Whether a Docker engine answers (testcontainers needs one)."""
    try:
        import docker

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """An admin URL (plain postgresql://) of a PostgreSQL server to create test databases in."""
    url = os.environ.get("UPR_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    parsed = urlparse(LOCAL_POSTGRES)
    if port_open(parsed.hostname or "127.0.0.1", parsed.port or 5432):
        yield LOCAL_POSTGRES
        return
    if docker_available():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver=None) as pg:
            yield pg.get_connection_url()
        return
    raise RuntimeError(
        "no PostgreSQL for the tests: set UPR_TEST_POSTGRES_URL, run a Docker engine, "
        "or start PostgreSQL on 127.0.0.1:5432"
    )


@contextlib.contextmanager
def nats_server() -> Iterator[str]:
    """The URL of a NATS server with JetStream (tests isolate themselves by namespace)."""
    url = os.environ.get("UPR_TEST_NATS_URL")
    if url:
        yield url
        return
    if port_open("127.0.0.1", 4222):
        yield LOCAL_NATS
        return
    if docker_available():
        from testcontainers.nats import NatsContainer

        with NatsContainer(image="nats:2.10", command="-js") as container:
            yield container.nats_uri()
        return
    store = Path(tempfile.mkdtemp(prefix="upr-test-nats-"))
    server = NatsServer(store_dir=store, name="upr-test").start()
    try:
        yield server.url
    finally:
        server.stop()
        shutil.rmtree(store, ignore_errors=True)


def with_database(admin_url: str, name: str) -> str:
    """The admin URL pointed at another database."""
    parsed = urlparse(admin_url)
    return parsed._replace(path=f"/{name}").geturl()


def async_url(url: str) -> str:
    """The SQLAlchemy asyncpg form of a postgresql:// URL."""
    return url.replace("postgresql://", "postgresql+asyncpg://", 1).replace(
        "postgresql+psycopg2://", "postgresql+asyncpg://", 1
    )


async def create_database(admin_url: str, *, template: str | None = None) -> str:
    """Create a uniquely named database; returns its name."""
    name = f"upr_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin_url)
    try:
        clause = f' TEMPLATE "{template}"' if template else ""
        await conn.execute(f'CREATE DATABASE "{name}"{clause}')
    finally:
        await conn.close()
    return name


async def drop_database(admin_url: str, name: str) -> None:
    """Drop a test database, disconnecting whoever still uses it."""
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
