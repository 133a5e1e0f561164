"""Plumbing fixtures: a database holding only the plumbing tables, and a bus."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

import shared.auth
import shared.inbox
import shared.outbox  # noqa: F401 - registers the plumbing tables
from shared.bus import Bus
from shared.db import PlumbingBase, create_engine, create_session_factory
from shared.settings import BaseServiceSettings


@pytest.fixture
def plumbing_settings(nats_url: str, namespace: str) -> BaseServiceSettings:
    return BaseServiceSettings(
        environment="test",
        nats_url=nats_url,
        nats_namespace=namespace,
        consumer_max_deliver=3,
        consumer_backoff_s=[0.1, 0.1, 0.1],
    )


@pytest.fixture
async def engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(postgres_url)
    async with engine.begin() as conn:
        await conn.run_sync(PlumbingBase.metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_session_factory(engine)


@pytest.fixture
async def bus(plumbing_settings: BaseServiceSettings, nats_client) -> AsyncIterator[Bus]:
    bus = Bus(plumbing_settings, client_name="test")
    await bus.connect(attempts=5)
    yield bus
    await bus.close()
