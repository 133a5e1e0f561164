"""A three-node NATS cluster (R3 streams, sync_interval: always): stop one node, then black-hole
another, in the middle of a stream of status changes, and bring them back: nothing lost,
nothing sent twice."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.sinks import SmsSink, SmtpSink
from tests.faults.conftest import (
    STATUS_CHANGED,
    duplicates,
    follower,
    mail_ids,
    query,
    recommendations,
    sms_ids,
    summary,
    three_services,
)
from tests.support.cluster import NatsCluster

CHANGES = 60
EMAIL, PHONE = "cluster@example.org", "+85512000009"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    nodes = NatsCluster(tmp_path / "cluster").start()
    yield nodes
    nodes.kill()


@pytest.fixture
def nats_url(cluster: NatsCluster) -> str:
    """The services connect with every node's URL."""
    return cluster.url


async def test_cluster_loses_two_nodes_in_turn(
    cluster: NatsCluster,
    make_database,
    stack_settings,
    http_client_for,
    smtp_sink: SmtpSink,
    sms_sink: SmsSink,
    tmp_path: Path,
) -> None:
    await cluster.ready()
    common, notifications_settings = stack_settings
    common = {**common, "nats_stream_replicas": 3}

    def notifications_r3(database_url: str):
        return notifications_settings(database_url).model_copy(update={"nats_stream_replicas": 3})

    first, second, _third = cluster.nodes
    async with three_services(
        common, notifications_r3, make_database, http_client_for, smtp_sink, sms_sink,
        tmp_path,
    ) as stack:  # fmt: skip
        await follower(stack, EMAIL, PHONE)
        await stack.import_demo()
        adhoc = await stack.monitoring_key("ADHOC")
        monitoring_db = stack.monitoring._transport.app.state.settings.database_url  # type: ignore[attr-defined]
        held = 0
        for n, rec in enumerate(recommendations(CHANGES, start=100)):
            if n == CHANGES // 4:
                first.kill()  # one node gone: the quorum (2 of 3) carries on
            if n == CHANGES // 2:
                cluster.freeze(second)  # and another black-holed: no quorum
            if n == 2 * CHANGES // 3:
                # Without a quorum nothing is acknowledged: the outbox holds the events.
                [row] = await query(
                    monitoring_db, "SELECT count(*) FROM outbox WHERE published_at IS NULL"
                )
                held = row[0]
                first.start()  # quorum again, with the frozen node still away
            if n == 5 * CHANGES // 6:
                cluster.thaw(second)
            await stack.assess(adhoc, rec, "in_progress", summary=f"step {n}")
            await asyncio.sleep(0.1)

        await stack.until(
            lambda: (
                len(mail_ids(stack, EMAIL)) >= CHANGES and len(sms_ids(stack, PHONE)) >= CHANGES
            ),
            timeout=120,
        )
        await asyncio.sleep(2.0)
        notifications_db = stack.notifications_app.state.settings.database_url
        [handled] = await query(
            notifications_db, "SELECT count(*) FROM inbox WHERE event_type = $1", STATUS_CHANGED
        )
        stream = await stack.notifications_app.state.bus.js.stream_info(
            common["nats_namespace"].upper()
        )
    mails, texts = mail_ids(stack, EMAIL), sms_ids(stack, PHONE)
    dup = duplicates(mails) + duplicates(texts)
    lost = 2 * CHANGES - len(mails) - len(texts)
    print(
        summary(
            "three-node cluster, one node killed then another frozen",
            events_sent=CHANGES,
            events_handled=handled[0],
            delivered=sum(mails.values()) + sum(texts.values()),
            duplicates=dup,
            lost=lost,
            held_without_quorum=held,
        )
    )
    assert stream.config.num_replicas == 3
    assert held > 0
    assert handled[0] == CHANGES
    assert lost == 0
    assert dup == 0
