"""Monitoring fixtures: the catalog and the monitoring service on one NATS namespace."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from services.catalog.app import create_app as create_catalog
from services.catalog.settings import CatalogSettings
from services.monitoring.app import create_app as create_monitoring
from services.monitoring.settings import MonitoringSettings

DEMO = (
    Path(__file__).resolve().parents[2]
    / "services/catalog/demo/cambodia_upr2_2014_recommendations.csv"
)


class Stack:
    """Both services running, with helpers to reach a state."""

    def __init__(self, catalog: httpx.AsyncClient, monitoring: httpx.AsyncClient, admin: dict):
        self.catalog = catalog
        self.monitoring = monitoring
        self.admin = admin

    async def import_demo(self) -> None:
        response = await self.catalog.post(
            "/v1/imports",
            params={"format": "positions-csv"},
            content=DEMO.read_bytes(),
            headers=self.admin,
        )
        assert response.status_code == 200, response.text

    async def wait_tracked(self, count: int = 205, timeout: float = 30) -> None:
        """Wait until the monitoring read model holds count recommendations."""
        async with asyncio.timeout(timeout):
            while True:
                stats = (
                    await self.monitoring.get("/v1/stats", params={"group_by": "cycle"})
                ).json()
                if stats["overall"]["total"] >= count:
                    return
                await asyncio.sleep(0.1)

    async def key(self, role: str, organisation: str | None = None) -> dict[str, str]:
        """A key on the monitoring service."""
        body = {"name": f"{role} of {organisation}", "role": role, "organisation": organisation}
        response = await self.monitoring.post("/v1/keys", json=body, headers=self.admin)
        assert response.status_code == 201, response.text
        return {"Authorization": f"Bearer {response.json()['key']}"}


@pytest.fixture
async def stack(
    make_database, nats_url, namespace, admin_key, http_client_for, nats_client, tmp_path
) -> AsyncIterator[Stack]:
    common = {
        "environment": "test",
        "nats_url": nats_url,
        "nats_namespace": namespace,
        "admin_api_key": admin_key,
        "outbox_poll_interval_s": 0.2,
        "consumer_max_deliver": 3,
        "consumer_backoff_s": [0.2, 0.2, 0.2],
    }
    catalog_app = create_catalog(CatalogSettings(database_url=await make_database(), **common))
    monitoring_app = create_monitoring(
        MonitoringSettings(
            database_url=await make_database(),
            upload_dir=tmp_path / "evidence",
            max_upload_bytes=64 * 1024,
            **common,
        )
    )
    async with (
        http_client_for(catalog_app) as catalog,
        http_client_for(monitoring_app) as monitoring,
    ):
        yield Stack(catalog, monitoring, {"Authorization": f"Bearer {admin_key}"})
