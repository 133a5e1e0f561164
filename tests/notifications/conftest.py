"""The three services on one NATS namespace, with a real SMTP server and SMS gateway."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli.sinks import SmsSink, SmtpSink
from services.catalog.app import create_app as create_catalog
from services.catalog.settings import CatalogSettings
from services.monitoring.app import create_app as create_monitoring
from services.monitoring.settings import MonitoringSettings
from services.notifications.app import create_app as create_notifications
from services.notifications.settings import NotificationsSettings

DEMO = (
    Path(__file__).resolve().parents[2]
    / "services/catalog/demo/cambodia_upr2_2014_recommendations.csv"
)
SMS_SECRET = "test-sms-gateway-secret-0123456789"


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def sms_sink() -> Iterator[SmsSink]:
    sink = SmsSink(secret=SMS_SECRET)
    sink.start()
    yield sink
    sink.stop()


class Stack:
    """Catalog, monitoring and notifications running, with helpers to reach a state."""

    def __init__(
        self,
        catalog: httpx.AsyncClient,
        monitoring: httpx.AsyncClient,
        notifications: list[httpx.AsyncClient],
        admin: dict[str, str],
        smtp: SmtpSink,
        sms: SmsSink,
    ) -> None:
        self.catalog = catalog
        self.monitoring = monitoring
        self.notifications = notifications[0]
        self.replicas = notifications
        self.admin = admin
        self.smtp = smtp
        self.sms = sms

    @property
    def notifications_app(self) -> Any:
        return self.notifications._transport.app  # type: ignore[attr-defined]

    async def import_demo(self) -> None:
        response = await self.catalog.post(
            "/v1/imports",
            params={"format": "positions-csv"},
            content=DEMO.read_bytes(),
            headers=self.admin,
        )
        assert response.status_code == 200, response.text
        async with asyncio.timeout(30):
            while True:
                stats = (
                    await self.monitoring.get("/v1/stats", params={"group_by": "cycle"})
                ).json()
                if stats["overall"]["total"] >= 205:
                    return
                await asyncio.sleep(0.1)

    async def recipient(self, **body: Any) -> dict[str, Any]:
        response = await self.notifications.post("/v1/recipients", json=body, headers=self.admin)
        assert response.status_code == 201, response.text
        return response.json()

    async def monitoring_key(self, organisation: str, role: str = "assessor") -> dict[str, str]:
        response = await self.monitoring.post(
            "/v1/keys",
            json={"name": organisation, "role": role, "organisation": organisation},
            headers=self.admin,
        )
        assert response.status_code == 201, response.text
        return {"Authorization": f"Bearer {response.json()['key']}"}

    async def assess(self, headers: dict[str, str], rec: str, status: str, **extra: Any) -> None:
        body = {"status": status, "assessor_type": "ngo", **extra}
        response = await self.monitoring.post(
            f"/v1/recommendations/{rec}/assessments", json=body, headers=headers
        )
        assert response.status_code == 201, response.text

    async def until(self, check: Callable[[], bool], timeout: float = 15.0) -> None:
        """Wait until check() holds."""
        async with asyncio.timeout(timeout):
            while not check():
                await asyncio.sleep(0.05)

    async def deliveries(self, **params: Any) -> list[dict[str, Any]]:
        response = await self.notifications.get(
            "/v1/deliveries", params={"limit": 500, **params}, headers=self.admin
        )
        assert response.status_code == 200, response.text
        return response.json()["items"]


@pytest.fixture
def stack_settings(nats_url, namespace, admin_key, smtp_sink, sms_sink, tmp_path):
    common = {
        "environment": "test",
        "nats_url": nats_url,
        "nats_namespace": namespace,
        "admin_api_key": admin_key,
        "outbox_poll_interval_s": 0.2,
        "consumer_max_deliver": 3,
        "consumer_backoff_s": [0.2, 0.2, 0.2],
    }

    def notifications(database_url: str) -> NotificationsSettings:
        return NotificationsSettings(
            database_url=database_url,
            smtp_port=smtp_sink.port,
            smtp_starttls="never",
            sms_gateway_url=sms_sink.url,
            sms_gateway_secret=SMS_SECRET,
            sms_rate_per_s=50.0,
            secret_key="test-notifications-secret-0123456789",
            retry_base_s=0.3,
            retry_max_s=1.0,
            dispatch_interval_s=0.2,
            **common,
        )

    return common, notifications


@pytest.fixture
async def stack(
    make_database, stack_settings, http_client_for, nats_client, smtp_sink, sms_sink, tmp_path
) -> AsyncIterator[Stack]:
    common, notifications_settings = stack_settings
    catalog_app = create_catalog(CatalogSettings(database_url=await make_database(), **common))
    monitoring_app = create_monitoring(
        MonitoringSettings(
            database_url=await make_database(), upload_dir=tmp_path / "evidence", **common
        )
    )
    notifications_app = create_notifications(notifications_settings(await make_database()))
    async with (
        http_client_for(catalog_app) as catalog,
        http_client_for(monitoring_app) as monitoring,
        http_client_for(notifications_app) as notifications,
    ):
        yield Stack(
            catalog,
            monitoring,
            [notifications],
            {"Authorization": f"Bearer {common['admin_api_key']}"},
            smtp_sink,
            sms_sink,
        )
