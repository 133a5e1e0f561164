"""Prometheus metrics every service exposes at /metrics."""

from __future__ import annotations

import time

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_LATENCY = Histogram(
    "upr_http_request_duration_seconds",
    "HTTP request latency",
    ["service", "method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENTS_PUBLISHED = Counter("upr_events_published_total", "Events published", ["service"])
EVENTS_CONSUMED = Counter(
    "upr_events_consumed_total", "Events handled by consumers", ["service", "consumer", "outcome"]
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
DELIVERIES = Counter("upr_deliveries_total", "Notification deliveries", ["channel", "outcome"])
DELIVERY_LATENCY = Histogram(
    "upr_delivery_latency_seconds",
    "From delivery creation to the provider's acceptance",
    ["channel"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)


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


def install_metrics(app: FastAPI, service: str) -> None:
    """Serve /metrics, refreshing the outbox gauges at each scrape."""
    app.add_middleware(MetricsMiddleware, service=service)

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        from shared.db import utcnow
        from shared.outbox import outbox_backlog

        try:
            async with request.app.state.session_factory() as session:
                backlog, oldest = await outbox_backlog(session)
            OUTBOX_BACKLOG.labels(service).set(backlog)
            OUTBOX_OLDEST_AGE.labels(service).set(
                (utcnow() - oldest).total_seconds() if oldest else 0
            )
        except Exception:
            pass
        bus = getattr(request.app.state, "bus", None)
        if bus is not None:
            for consumer in bus.consumers:
                try:
                    info = await bus.js.consumer_info(bus.stream, consumer.durable)
                    CONSUMER_LAG.labels(service, consumer.durable).set(info.num_pending or 0)
                except Exception:
                    pass
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
