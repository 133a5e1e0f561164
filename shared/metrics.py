"""Prometheus metrics every service exposes at /metrics (each process its own)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import Any

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

HTTP_LATENCY = Histogram(
    "upr_http_request_duration_seconds",
    "HTTP request latency",
    ["service", "method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENTS_PUBLISHED = Counter(
    "upr_events_published_total", "Events acknowledged by the stream", ["service", "type"]
)
EVENTS_PUBLISH_FAILED = Counter(
    "upr_events_publish_failed_total",
    "Publish attempts the stream did not acknowledge (the outbox retries them)",
    ["service", "type"],
)
EVENTS_CONSUMED = Counter(
    "upr_events_consumed_total",
    "Events handled by consumers, by outcome: handled, retried, dead_lettered",
    ["service", "consumer", "type", "outcome"],
)
OUTBOX_BACKLOG = Gauge("upr_outbox_backlog", "Events waiting in the outbox", ["service"])
OUTBOX_OLDEST_AGE = Gauge(
    "upr_outbox_oldest_age_seconds", "Age of the oldest unpublished event", ["service"]
)
CONSUMER_LAG = Gauge(
    "upr_consumer_pending",
    "Messages the durable consumer has not yet received",
    ["service", "consumer"],
)
CONSUMER_ACK_PENDING = Gauge(
    "upr_consumer_ack_pending",
    "Messages delivered to the durable consumer and not yet acknowledged",
    ["service", "consumer"],
)
DELIVERIES = Counter(
    "upr_deliveries_total",
    "Notification deliveries by channel and outcome: sent, failed, retried, skipped",
    ["channel", "outcome"],
)
DELIVERY_LATENCY = Histogram(
    "upr_delivery_latency_seconds",
    "From delivery creation to the provider's acceptance",
    ["channel"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
DELIVERY_EVENT_LATENCY = Histogram(
    "upr_delivery_event_latency_seconds",
    "From the time of the event that caused a message to the provider's acceptance",
    ["channel"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)

# How long a scrape waits for the outbox count or for JetStream's consumer info.
SCRAPE_TIMEOUT_S = 2.0


def _as_datetime(value: dt.datetime | str | None) -> dt.datetime | None:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value


def observe_delivery(
    channel: str,
    outcome: str,
    *,
    now: dt.datetime | None = None,
    created_at: dt.datetime | None = None,
    event_time: dt.datetime | str | None = None,
) -> None:
    """Count one delivery outcome; for `sent`, observe both latencies that are known."""
    DELIVERIES.labels(channel, outcome).inc()
    if outcome != "sent":
        return
    now = _as_datetime(now) or dt.datetime.now(dt.UTC)
    if (created := _as_datetime(created_at)) is not None:
        DELIVERY_LATENCY.labels(channel).observe(max((now - created).total_seconds(), 0.0))
    if (caused := _as_datetime(event_time)) is not None:
        DELIVERY_EVENT_LATENCY.labels(channel).observe(max((now - caused).total_seconds(), 0.0))


def set_consumer_lag(service: str, consumer: str, info: Any) -> None:
    """Record num_pending and num_ack_pending from a JetStream ConsumerInfo."""
    CONSUMER_LAG.labels(service, consumer).set(info.num_pending or 0)
    CONSUMER_ACK_PENDING.labels(service, consumer).set(info.num_ack_pending or 0)


class MetricsMiddleware:
    """Time each HTTP request by its route template (not the raw path: ids stay out)."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            HTTP_LATENCY.labels(self.service, scope["method"], template, str(status)).observe(
                time.perf_counter() - started
            )


async def refresh_gauges(app: FastAPI, service: str) -> None:
    """Recompute the outbox gauges and the consumers' lag (each bounded by a timeout)."""
    from shared.db import utcnow
    from shared.outbox import outbox_backlog

    try:
        async with asyncio.timeout(SCRAPE_TIMEOUT_S), app.state.session_factory() as session:
            backlog, oldest = await outbox_backlog(session)
        OUTBOX_BACKLOG.labels(service).set(backlog)
        OUTBOX_OLDEST_AGE.labels(service).set((utcnow() - oldest).total_seconds() if oldest else 0)
    except Exception as exc:
        # The last values stay: a scrape must answer even when the database does not.
        log.debug("outbox gauges not refreshed: %r", exc)
    bus = getattr(app.state, "bus", None)
    if bus is None or not bus.is_connected:
        return
    for consumer in bus.consumers:
        try:
            info = await bus.js.consumer_info(
                bus.stream, consumer.durable, timeout=SCRAPE_TIMEOUT_S
            )
            set_consumer_lag(service, consumer.durable, info)
        except Exception as exc:
            log.debug("consumer lag of %s not refreshed: %r", consumer.durable, exc)


def install_metrics(app: FastAPI, service: str) -> None:
    """Serve /metrics, refreshing the outbox and consumer gauges at each scrape."""
    app.add_middleware(MetricsMiddleware, service=service)

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        await refresh_gauges(request.app, service)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
