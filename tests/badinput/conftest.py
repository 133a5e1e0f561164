"""Each service served by uvicorn in a thread of this process, on real PostgreSQL and NATS."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
import uvicorn
from nats.js.errors import NotFoundError

from tests.catalog.conftest import admin, catalog, catalog_app  # noqa: F401 - fixtures
from tests.support import infra


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _delete_streams(nats_url: str, namespace: str) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    for stream in (namespace.upper(), f"{namespace.upper()}_DLQ"):
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(stream)
    await nc.close()


class Served:
    """A running service: its base URL, its app and the bootstrap admin key."""

    def __init__(self, url: str, app: Any, admin_key: str) -> None:
        self.url = url
        self.app = app
        self.admin = {"Authorization": f"Bearer {admin_key}"}


@contextlib.contextmanager
def serve(
    service: str, postgres_admin_url: str, nats_url: str, tmp: Path, **extra: Any
) -> Iterator[Served]:
    """Start one service on a fresh database and NATS namespace; stop and clean up after."""
    database = asyncio.run(infra.create_database(postgres_admin_url))
    namespace = "t" + uuid.uuid4().hex[:12]
    admin_key = "test-admin-" + secrets.token_urlsafe(16)
    common = {
        "environment": "test",
        "database_url": infra.async_url(infra.with_database(postgres_admin_url, database)),
        "nats_url": nats_url,
        "nats_namespace": namespace,
        "admin_api_key": admin_key,
        "outbox_poll_interval_s": 0.2,
        **extra,
    }
    if service == "catalog":
        from services.catalog.app import create_app
        from services.catalog.settings import CatalogSettings

        app = create_app(CatalogSettings(**common))
    elif service == "monitoring":
        from services.monitoring.app import create_app
        from services.monitoring.settings import MonitoringSettings

        app = create_app(MonitoringSettings(upload_dir=tmp / "evidence", **common))
    else:
        from services.notifications.app import create_app
        from services.notifications.settings import NotificationsSettings

        app = create_app(
            NotificationsSettings(
                secret_key="test-notifications-secret-0123456789",
                sms_gateway_secret="test-sms-gateway-secret-0123456789",
                smtp_port=_free_port(),  # nothing listens: deliveries just wait for retries
                **common,
            )
        )
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name=f"uvicorn-{service}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, f"{service} did not start"
        time.sleep(0.05)
    try:
        yield Served(f"http://127.0.0.1:{port}", app, admin_key)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        asyncio.run(_delete_streams(nats_url, namespace))
        asyncio.run(infra.drop_database(postgres_admin_url, database))


@pytest.fixture(scope="module")
def served_catalog(postgres_admin_url, nats_url, tmp_path_factory) -> Iterator[Served]:
    with serve("catalog", postgres_admin_url, nats_url, tmp_path_factory.mktemp("c")) as s:
        yield s


@pytest.fixture(scope="module")
def served_monitoring(postgres_admin_url, nats_url, tmp_path_factory) -> Iterator[Served]:
    with serve("monitoring", postgres_admin_url, nats_url, tmp_path_factory.mktemp("m")) as s:
        yield s


@pytest.fixture(scope="module")
def served_notifications(postgres_admin_url, nats_url, tmp_path_factory) -> Iterator[Served]:
    with serve("notifications", postgres_admin_url, nats_url, tmp_path_factory.mktemp("n")) as s:
        yield s
