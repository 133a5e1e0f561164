"""Fault fixtures: a private nats-server the tests may kill, the stack pointed at it, helpers."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import nats
import pytest

from cli.nats_server import NatsServer
from cli.sinks import SmsSink, SmtpSink
from tests.notifications import conftest as notifications_harness
from tests.notifications.conftest import Stack

# The three-service harness of the notifications tests, reused here (pytest finds fixtures by
# their names in this module).
stack = notifications_harness.stack
stack_settings = notifications_harness.stack_settings
smtp_sink = notifications_harness.smtp_sink
sms_sink = notifications_harness.sms_sink

STATUS_CHANGED = "upr.monitoring.status.changed"


@pytest.fixture
def private_nats(tmp_path: Path) -> Iterator[NatsServer]:
    """A nats-server of this test's own (never the shared one on 4222)."""
    server = NatsServer(store_dir=tmp_path / "nats", name="upr-fault").start()
    yield server
    server.kill()


@pytest.fixture
def nats_url(private_nats: NatsServer) -> str:
    """Fault tests talk to their private broker, which they may kill."""
    return private_nats.url


FAULT_SUMMARIES: list[str] = []


def summary(name: str, **figures: int) -> str:
    """The one-line fault summary `make test` prints at the end of the run."""
    line = f"FAULT {name}: " + ", ".join(f"{k}={v}" for k, v in figures.items())
    FAULT_SUMMARIES.append(line)
    return line


def recommendations(count: int, start: int = 1) -> list[str]:
    """Ids of demo recommendations (Cambodia, 2nd cycle, paragraph 118)."""
    return [f"KHM-2-118.{n}" for n in range(start, start + count)]


async def follower(
    stack: Stack,
    email: str | None,
    phone: str | None = None,
    *,
    event_types: tuple[str, ...] = (STATUS_CHANGED,),
) -> dict[str, Any]:
    """An NGO subscribed to every event of these types on each channel it has (and to nothing
    else: coordinators also hear of overdue review milestones)."""
    recipient = await stack.recipient(
        name=f"Follower {email or phone}", kind="ngo", email=email, phone=phone
    )
    channels = [c for c, a in (("email", email), ("sms", phone)) if a]
    response = await stack.notifications.post(
        "/v1/subscriptions",
        json={
            "recipient_id": recipient["id"],
            "channels": channels,
            "filters": {"event_types": list(event_types)},
        },
        headers=stack.admin,
    )
    assert response.status_code == 201, response.text
    return recipient


def duplicates(counts: Counter[str]) -> int:
    """Copies beyond the first of each key."""
    return sum(n - 1 for n in counts.values() if n > 1)


def sms_ids(stack: Stack, phone: str) -> Counter[str]:
    """How often each delivery id reached the SMS gateway for this number."""
    return Counter(r["id"] for r in stack.sms.requests if r["to"] == phone)


def mail_ids(stack: Stack, address: str) -> Counter[str]:
    """How often each Message-ID reached the SMTP server for this address."""
    return Counter(str(m["Message-ID"]) for m in stack.smtp.messages_to(address))


def plain_url(sqlalchemy_url: str) -> str:
    """The asyncpg form of a postgresql+asyncpg:// URL."""
    return sqlalchemy_url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def query(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    """Run one query on a service database directly (what the service believes)."""
    conn = await asyncpg.connect(plain_url(database_url))
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def stream_messages(url: str, stream: str, subject: str) -> list[nats.aio.msg.Msg]:
    """Every message of a stream on a subject, read by an ephemeral consumer."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(subject, stream=stream)
        seen: list[nats.aio.msg.Msg] = []
        while True:
            try:
                msgs = await sub.fetch(200, timeout=1)
            except (nats.errors.TimeoutError, TimeoutError):
                return seen
            for msg in msgs:
                seen.append(msg)
                await msg.ack()
    finally:
        await nc.close()


async def eventually(check, timeout: float = 30.0, interval: float = 0.1) -> None:
    """Wait until an async check returns true."""
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(interval)


def environment(**settings: Any) -> dict[str, str]:
    """UPR_* variables for a service process (lists as JSON, as pydantic-settings reads them)."""
    return {
        f"UPR_{name.upper()}": json.dumps(value) if isinstance(value, list) else str(value)
        for name, value in settings.items()
    }


@contextlib.asynccontextmanager
async def three_services(
    common: dict[str, Any],
    notifications_settings,
    make_database,
    http_client_for,
    smtp: SmtpSink,
    sms: SmsSink,
    tmp_path: Path,
    *,
    notifications_database: str | None = None,
) -> AsyncIterator[Stack]:
    """Catalog, monitoring and notifications in this process, on settings a test chose."""
    from services.catalog.app import create_app as create_catalog
    from services.catalog.settings import CatalogSettings
    from services.monitoring.app import create_app as create_monitoring
    from services.monitoring.settings import MonitoringSettings
    from services.notifications.app import create_app as create_notifications

    catalog_app = create_catalog(CatalogSettings(database_url=await make_database(), **common))
    monitoring_app = create_monitoring(
        MonitoringSettings(
            database_url=await make_database(), upload_dir=tmp_path / "evidence", **common
        )
    )
    notifications_app = create_notifications(
        notifications_settings(notifications_database or await make_database())
    )
    async with (
        http_client_for(catalog_app) as catalog,
        http_client_for(monitoring_app) as monitoring,
        http_client_for(notifications_app) as notifications,
    ):
        admin = {"Authorization": f"Bearer {common['admin_api_key']}"}
        yield Stack(catalog, monitoring, [notifications], admin, smtp, sms)
