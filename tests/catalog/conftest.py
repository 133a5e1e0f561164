"""Catalog fixtures: the service on a fresh database, wired to the test's NATS namespace."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from services.catalog.app import create_app
from services.catalog.settings import CatalogSettings


@pytest.fixture
def catalog_settings(
    postgres_url: str, nats_url: str, namespace: str, admin_key: str
) -> CatalogSettings:
    return CatalogSettings(
        environment="test",
        database_url=postgres_url,
        nats_url=nats_url,
        nats_namespace=namespace,
        admin_api_key=admin_key,
        outbox_poll_interval_s=0.2,
    )


@pytest.fixture
async def catalog_app(catalog_settings: CatalogSettings):
    return create_app(catalog_settings)


@pytest.fixture
async def catalog(catalog_app, http_client_for, nats_client) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on a running catalog (lifespan run: migrations, bus, relay)."""
    async with http_client_for(catalog_app) as client:
        yield client


@pytest.fixture
def admin(admin_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {admin_key}"}
