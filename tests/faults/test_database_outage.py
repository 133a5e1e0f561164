"""The notifications database unreachable for a few seconds (a TCP proxy we cut): requests
get 503 problem+json, the consumer pauses and resumes, nothing is lost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from cli.sinks import SmsSink, SmtpSink
from tests.faults.conftest import (
    STATUS_CHANGED,
    duplicates,
    follower,
    mail_ids,
    query,
    recommendations,
    stream_messages,
    summary,
    three_services,
)
from tests.support.proxy import TcpProxy

CHANGES = 12
EMAIL = "db-outage@example.org"


@pytest.fixture
async def proxy(postgres_admin_url: str) -> AsyncIterator[TcpProxy]:
    target = urlparse(postgres_admin_url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
    await proxy.start()
    yield proxy
    await proxy.close()


async def test_database_unreachable_for_a_few_seconds(
    make_database,
    stack_settings,
    http_client_for,
    nats_client,
    namespace: str,
    nats_url: str,
    proxy: TcpProxy,
    smtp_sink: SmtpSink,
    sms_sink: SmsSink,
    tmp_path: Path,
) -> None:
    common, notifications_settings = stack_settings
    direct = await make_database()
    through_proxy = direct.replace(
        f"@{urlparse(direct).hostname}:{urlparse(direct).port}", f"@127.0.0.1:{proxy.port}", 1
    )
    assert through_proxy != direct
    async with three_services(
        common, notifications_settings, make_database, http_client_for, smtp_sink, sms_sink,
        tmp_path, notifications_database=through_proxy,
    ) as stack:  # fmt: skip
        notifications, admin = stack.notifications, stack.admin
        await follower(stack, EMAIL)
        await stack.import_demo()
        adhoc = await stack.monitoring_key("ADHOC")
        [first] = recommendations(1, start=100)
        await stack.assess(adhoc, first, "in_progress")
        await stack.until(lambda: len(mail_ids(stack, EMAIL)) == 1)

        await proxy.cut()
        answers = [
            await notifications.get("/v1/recipients", headers=admin),
            await notifications.post(
                "/v1/recipients",
                json={"name": "Late NGO", "kind": "ngo", "email": "late@example.org"},
                headers=admin,
            ),
            await notifications.get("/v1/deliveries", headers=admin),
        ]
        ready = await notifications.get("/readyz")
        # Status changes keep coming while notifications cannot reach its database.
        for rec in recommendations(CHANGES, start=101):
            await stack.assess(adhoc, rec, "in_progress")
        await asyncio.sleep(4.0)
        during = len(mail_ids(stack, EMAIL))
        await proxy.restore()

        await stack.until(lambda: len(mail_ids(stack, EMAIL)) >= CHANGES + 1, timeout=60)
        after = await notifications.get("/v1/recipients", headers=admin)
        await asyncio.sleep(1.0)

    [handled] = await query(
        direct, "SELECT count(*) FROM inbox WHERE event_type = $1", STATUS_CHANGED
    )
    dead = await stream_messages(nats_url, f"{namespace.upper()}_DLQ", f"{namespace}_dlq.>")
    mails = mail_ids(stack, EMAIL)
    print(
        summary(
            "database unreachable",
            events_sent=CHANGES + 1,
            events_handled=handled[0],
            delivered=sum(mails.values()),
            dead_lettered=len(dead),
            duplicates=duplicates(mails),
            lost=CHANGES + 1 - len(mails),
            http_503=sum(a.status_code == 503 for a in answers),
        )
    )
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["status"] == 503
        assert answer.headers["retry-after"]
    assert ready.status_code == 503 and "database" in ready.json()["detail"]
    assert during == 1, "nothing can be routed without the database"
    assert after.status_code == 200
    assert dead == []
    assert handled[0] == CHANGES + 1
    assert len(mails) == CHANGES + 1
    assert duplicates(mails) == 0
