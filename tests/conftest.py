"""Test harness: real PostgreSQL and NATS JetStream, isolated per run and per test."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import nats
import pytest
from nats.js.errors import NotFoundError

from tests.support import infra

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (the handbook's real data), or skip."""
    if not SHARED_DATA.exists():
        pytest.skip("../shared/data is not beside the repository")
    return SHARED_DATA


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    with infra.postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    with infra.nats_server() as url:
        yield url


@pytest.fixture
def namespace() -> str:
    """A NATS namespace of this test's own: stream T<hex>, subjects t<hex>.>"""
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
async def nats_client(nats_url: str, namespace: str) -> AsyncIterator[nats.NATS]:
    """A plain NATS connection; the test's streams are deleted afterwards."""
    nc = await nats.connect(nats_url)
    yield nc
    js = nc.jetstream()
    for stream in (namespace.upper(), f"{namespace.upper()}_DLQ"):
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(stream)
    await nc.close()


@pytest.fixture
async def postgres_url(postgres_admin_url: str) -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for one test (SQLAlchemy asyncpg URL)."""
    name = await infra.create_database(postgres_admin_url)
    yield infra.async_url(infra.with_database(postgres_admin_url, name))
    await infra.drop_database(postgres_admin_url, name)


@pytest.fixture
async def make_database(postgres_admin_url: str) -> AsyncIterator:
    """Create more fresh databases in one test (one per service); all dropped afterwards."""
    names: list[str] = []

    async def make() -> str:
        name = await infra.create_database(postgres_admin_url)
        names.append(name)
        return infra.async_url(infra.with_database(postgres_admin_url, name))

    yield make
    for name in names:
        await infra.drop_database(postgres_admin_url, name)


@pytest.fixture
def admin_key() -> str:
    return "test-admin-" + secrets.token_urlsafe(16)


class EventRecorder:
    """A real JetStream subscriber that records every event of a namespace."""

    def __init__(self, nc: nats.NATS, namespace: str) -> None:
        self.nc = nc
        self.namespace = namespace
        self.events: list[dict] = []
        self._sub = None

    async def start(self) -> None:
        js = self.nc.jetstream()
        for _ in range(100):
            try:
                await js.stream_info(self.namespace.upper())
                break
            except NotFoundError:
                await asyncio.sleep(0.05)

        async def on_message(msg: nats.aio.msg.Msg) -> None:
            import json

            self.events.append({"subject": msg.subject, **json.loads(msg.data)})

        self._sub = await js.subscribe(
            f"{self.namespace}.>",
            stream=self.namespace.upper(),
            cb=on_message,
            ordered_consumer=True,
        )

    async def wait_for(self, count: int, timeout: float = 10.0, **match: str) -> list[dict]:
        """Wait until at least count matching events arrived; return the matching ones."""

        def matching() -> list[dict]:
            return [e for e in self.events if all(e.get(k) == v for k, v in match.items())]

        async with asyncio.timeout(timeout):
            while len(matching()) < count:
                await asyncio.sleep(0.02)
        return matching()

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()


@pytest.fixture
async def events(nats_client: nats.NATS, namespace: str) -> AsyncIterator[EventRecorder]:
    recorder = EventRecorder(nats_client, namespace)
    yield recorder
    await recorder.stop()


@pytest.fixture
def http_client_for():
    """Open an httpx client on an app, running its lifespan (real startup and shutdown)."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def open_client(app) -> AsyncIterator[httpx.AsyncClient]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                yield client

    return open_client


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """Print one line per fault test: events sent, handled, delivered, duplicates, lost."""
    from tests.faults.conftest import FAULT_SUMMARIES

    if FAULT_SUMMARIES:
        terminalreporter.section("fault summary")
        for line in FAULT_SUMMARIES:
            terminalreporter.write_line(line)
