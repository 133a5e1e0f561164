"""Every metric docs/operations.md promises is served at /metrics and moves when it should."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt

import httpx
import pytest
from nats.js.errors import NotFoundError
from prometheus_client.parser import text_string_to_metric_families

from shared.bus import Bus
from shared.events import Envelope, EventData
from shared.metrics import observe_delivery
from tests.notifications.conftest import (  # noqa: F401 - fixtures
    Stack,
    sms_sink,
    smtp_sink,
    stack,
    stack_settings,
)

REC = "KHM-2-118.17"
EMBASSY = {
    "name": "Embassy of Belgium in Phnom Penh",
    "kind": "embassy",
    "represents_state": "BEL",
    "email": "embassy.belgium@example.org",
    "phone": "+85512345678",
}


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, frozenset], float]:
    """The samples of a /metrics page, keyed by name and labels."""
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    """One sample's value (0 when the series does not exist yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: dict, name: str, **labels: str) -> float:
    """The sum over every series of a metric whose labels include these."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


async def until(check, timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.1)


async def test_the_stack_reports_http_events_outbox_lag_and_deliveries(
    stack: Stack,  # noqa: F811 - the fixture imported above
    nats_client,
    namespace,
) -> None:
    before = {
        "catalog": await scrape(stack.catalog),
        "monitoring": await scrape(stack.monitoring),
        "notifications": await scrape(stack.notifications),
    }
    await stack.recipient(**EMBASSY)
    await stack.import_demo()
    adhoc = await stack.monitoring_key("ADHOC")
    await stack.assess(adhoc, REC, "in_progress", summary="Draft law discussed")
    await stack.until(lambda: len(stack.smtp.messages_to(EMBASSY["email"])) == 1)
    await stack.until(lambda: any(r["to"] == EMBASSY["phone"] for r in stack.sms.requests))

    catalog = await scrape(stack.catalog)
    created = "upr.catalog.recommendation.created"
    # HTTP: by route template and status.
    assert (
        value(
            catalog,
            "upr_http_request_duration_seconds_count",
            service="catalog",
            method="POST",
            route="/v1/imports",
            status="200",
        )
        >= 1
    )
    # Published by type; the outbox is empty again.
    published = value(catalog, "upr_events_published_total", service="catalog", type=created)
    assert published - value(
        before["catalog"], "upr_events_published_total", service="catalog", type=created
    ) == pytest.approx(205)
    assert value(catalog, "upr_outbox_backlog", service="catalog") == 0
    assert value(catalog, "upr_outbox_oldest_age_seconds", service="catalog") == 0

    async def notified() -> bool:
        samples = await scrape(stack.notifications)
        sent = total(samples, "upr_deliveries_total", outcome="sent") - total(
            before["notifications"], "upr_deliveries_total", outcome="sent"
        )
        return sent >= 2

    await until(notified)
    notifications = await scrape(stack.notifications)
    for channel in ("email", "sms"):
        key = {"channel": channel}
        for name in (
            "upr_delivery_latency_seconds_count",
            "upr_delivery_event_latency_seconds_count",
        ):
            assert value(notifications, name, **key) > value(before["notifications"], name, **key)
    status_changed = "upr.monitoring.status.changed"
    handled = {
        "service": "notifications",
        "consumer": "notifications",
        "type": status_changed,
        "outcome": "handled",
    }
    assert value(notifications, "upr_events_consumed_total", **handled) > value(
        before["notifications"], "upr_events_consumed_total", **handled
    )
    lag = {"service": "notifications", "consumer": "notifications"}
    assert ("upr_consumer_pending", frozenset(lag.items())) in notifications

    monitoring = await scrape(stack.monitoring)
    catalog_handled = {
        "service": "monitoring",
        "consumer": "monitoring-catalog",
        "type": created,
        "outcome": "handled",
    }
    assert value(monitoring, "upr_events_consumed_total", **catalog_handled) - value(
        before["monitoring"], "upr_events_consumed_total", **catalog_handled
    ) == pytest.approx(205)
    assert (
        value(monitoring, "upr_events_published_total", service="monitoring", type=status_changed)
        >= 1
    )


async def test_outbox_backlog_and_consumer_lag_show_what_waits(
    stack: Stack,  # noqa: F811 - the fixture imported above
) -> None:
    await stack.import_demo()
    # Relay stopped: a write waits in the catalog's outbox, and the gauges say so.
    relay = stack.catalog._transport.app.state.relay  # type: ignore[attr-defined]
    await relay.stop()
    response = await stack.catalog.patch(
        f"/v1/recommendations/{REC}", json={"sdg_goals": [16]}, headers=stack.admin
    )
    assert response.status_code == 200, response.text
    await asyncio.sleep(0.05)
    samples = await scrape(stack.catalog)
    assert value(samples, "upr_outbox_backlog", service="catalog") == 1
    assert value(samples, "upr_outbox_oldest_age_seconds", service="catalog") > 0

    # Monitoring's consumer stopped: the event waits in the stream, counted as its lag.
    consumer = stack.monitoring._transport.app.state.catalog_consumer  # type: ignore[attr-defined]
    await consumer.stop()
    # Let the stopped loop's last pull request (1 s) expire, so nothing is delivered to it.
    await asyncio.sleep(1.5)
    relay.start()

    async def backlog_empty() -> bool:
        return value(await scrape(stack.catalog), "upr_outbox_backlog", service="catalog") == 0

    await until(backlog_empty)
    lag = {"service": "monitoring", "consumer": "monitoring-catalog"}

    async def lagging() -> bool:
        return value(await scrape(stack.monitoring), "upr_consumer_pending", **lag) == 1

    await until(lagging)
    consumer._stopping = False
    consumer.start()

    async def caught_up() -> bool:
        samples = await scrape(stack.monitoring)
        waiting = value(samples, "upr_consumer_pending", **lag)
        return waiting + value(samples, "upr_consumer_ack_pending", **lag) == 0

    await until(caught_up)


class Ping(EventData):
    event_type = "upr.test.ping"


async def test_failed_publishes_and_dead_letters_are_counted(bus: Bus, nats_client) -> None:
    from prometheus_client import REGISTRY

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    dead = {"service": "test", "consumer": "poisoned", "type": "upr.test.ping"}
    dead_before = sample("upr_events_consumed_total", **dead, outcome="dead_lettered")

    async def handler(envelope: Envelope) -> None:
        from shared.bus import PermanentEventError

        raise PermanentEventError("impossible")

    bus.consume("poisoned", ["upr.test.ping"], handler)
    [outcome] = await bus.publish_many([Envelope.wrap(Ping(), source="t", subject=None)])
    assert outcome.ok
    async with asyncio.timeout(10):
        while sample("upr_events_consumed_total", **dead, outcome="dead_lettered") == dead_before:
            await asyncio.sleep(0.05)

    # No stream for the subject any more: the publish fails and is counted as failed.
    failed_before = sample("upr_events_publish_failed_total", service="test", type="upr.test.ping")
    published_before = sample("upr_events_published_total", service="test", type="upr.test.ping")
    with contextlib.suppress(NotFoundError):
        await nats_client.jetstream().delete_stream(bus.stream)
    [outcome] = await bus.publish_many(
        [Envelope.wrap(Ping(), source="t", subject=None)], timeout=2.0
    )
    assert not outcome.ok
    assert sample(
        "upr_events_publish_failed_total", service="test", type="upr.test.ping"
    ) == pytest.approx(failed_before + 1)
    assert sample(
        "upr_events_published_total", service="test", type="upr.test.ping"
    ) == pytest.approx(published_before)


def test_observe_delivery_measures_from_the_event_and_from_creation() -> None:
    from prometheus_client import REGISTRY

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    now = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)
    event_sum = sample("upr_delivery_event_latency_seconds_sum", channel="webhook")
    created_sum = sample("upr_delivery_latency_seconds_sum", channel="webhook")
    skipped = sample("upr_deliveries_total", channel="webhook", outcome="skipped")
    observe_delivery(
        "webhook",
        "sent",
        now=now,
        created_at=now - dt.timedelta(seconds=2),
        event_time=(now - dt.timedelta(seconds=5)).isoformat(),
    )
    observe_delivery("webhook", "skipped")
    assert sample("upr_delivery_event_latency_seconds_sum", channel="webhook") == pytest.approx(
        event_sum + 5
    )
    assert sample("upr_delivery_latency_seconds_sum", channel="webhook") == pytest.approx(
        created_sum + 2
    )
    assert sample("upr_deliveries_total", channel="webhook", outcome="skipped") == skipped + 1
