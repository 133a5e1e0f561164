"""W3C trace context travels from an HTTP request through NATS to the next service's handler."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from shared import tracing
from shared.bus import Bus
from shared.events import Envelope, EventData
from shared.logs import configure_logging
from tests.notifications.conftest import (  # noqa: F401 - fixtures
    Stack,
    sms_sink,
    smtp_sink,
    stack,
    stack_settings,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def test_parse_accepts_w3c_and_refuses_malformed_values() -> None:
    context = tracing.parse(CALLER)
    assert context == tracing.TraceContext(TRACE_ID, "00f067aa0ba902b7", "01")
    assert context.traceparent == CALLER
    # A future version may add fields; version 00 may not.
    assert tracing.parse(f"01-{TRACE_ID}-00f067aa0ba902b7-01-extra") is not None
    for bad in (
        None,
        "",
        "garbage",
        f"00-{TRACE_ID}-00f067aa0ba902b7-01-extra",
        f"ff-{TRACE_ID}-00f067aa0ba902b7-01",
        f"00-{'0' * 32}-00f067aa0ba902b7-01",
        f"00-{TRACE_ID}-{'0' * 16}-01",
        f"00-{TRACE_ID[:-1]}-00f067aa0ba902b7-01",
    ):
        assert tracing.parse(bad) is None, bad


def test_a_span_keeps_the_trace_and_gets_its_own_id() -> None:
    parent = tracing.parse(CALLER)
    with tracing.span("test", "work", parent) as inner:
        assert tracing.current() == inner
        assert inner.trace_id == TRACE_ID and inner.span_id != parent.span_id
        assert Envelope.wrap(Ping(), source="t", subject=None).traceparent == inner.traceparent
    assert tracing.current() is None
    with tracing.span("test", "root", None) as root:
        assert len(root.trace_id) == 32 and root.trace_id != TRACE_ID
    assert Envelope.wrap(Ping(), source="t", subject=None).traceparent is None


class Ping(EventData):
    event_type = "upr.test.ping"


async def test_the_consumer_restores_the_publishers_trace(bus: Bus) -> None:
    """The handler runs in the publisher's trace; what it records carries it on."""
    seen: list[tuple[tracing.TraceContext | None, str | None]] = []
    done = asyncio.Event()

    async def handler(envelope: Envelope) -> None:
        emitted = Envelope.wrap(Ping(), source="test", subject=None)
        seen.append((tracing.current(), emitted.traceparent))
        done.set()

    bus.consume("tracer", ["upr.test.ping"], handler)
    with tracing.span("test", "publish", tracing.parse(CALLER)) as publisher:
        [outcome] = await bus.publish_many([Envelope.wrap(Ping(), source="test", subject=None)])
    assert outcome.ok
    async with asyncio.timeout(10):
        await done.wait()
    [(context, emitted)] = seen
    assert context is not None and context.trace_id == TRACE_ID
    assert context.span_id != publisher.span_id
    assert emitted == context.traceparent


async def test_trace_id_from_a_request_reaches_the_next_services_and_their_events(
    stack: Stack,  # noqa: F811 - the fixture imported above
    nats_client,
    namespace,
) -> None:
    """Catalog request -> recommendation.created -> monitoring's handler -> deadline.set."""
    response = await stack.catalog.post(
        "/v1/recommendations",
        json={
            "state_under_review": "LAO",
            "cycle": 3,
            "number": "115.1",
            "review_date": "2020-01-22",
            "text": "Ratify the Optional Protocol to the Convention against Torture",
            "recommending_states": ["Belgium"],
        },
        headers={**stack.admin, "traceparent": CALLER},
    )
    assert response.status_code == 201, response.text

    js = nats_client.jetstream()
    created = await js.pull_subscribe(
        f"{namespace}.catalog.recommendation.created", stream=namespace.upper()
    )
    [msg] = await created.fetch(1, timeout=10)
    envelope = json.loads(msg.data)
    assert msg.headers["traceparent"] == envelope["traceparent"]
    request_span = tracing.parse(envelope["traceparent"])
    assert request_span is not None and request_span.trace_id == TRACE_ID

    # Monitoring's handler of that event creates the review calendar: its deadline.set events
    # were recorded in the handler's span, a child in the same trace.
    deadlines = await js.pull_subscribe(
        f"{namespace}.monitoring.deadline.set", stream=namespace.upper()
    )
    msgs = await deadlines.fetch(1, timeout=15)
    assert msgs
    for msg in msgs:
        handler_span = tracing.parse(json.loads(msg.data)["traceparent"])
        assert handler_span is not None and handler_span.trace_id == TRACE_ID
        assert handler_span.span_id != request_span.span_id
        assert msg.headers["traceparent"] == handler_span.traceparent

    # A request without traceparent starts a trace of its own.
    response = await stack.catalog.post(
        "/v1/recommendations",
        json={
            "state_under_review": "LAO",
            "cycle": 3,
            "number": "115.2",
            "text": "Abolish the death penalty",
            "recommending_states": ["Belgium"],
        },
        headers=stack.admin,
    )
    assert response.status_code == 201, response.text
    [msg] = await created.fetch(1, timeout=10)
    other = tracing.parse(json.loads(msg.data)["traceparent"])
    assert other is not None and other.trace_id != TRACE_ID


async def test_logs_carry_the_trace_id(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("test", "INFO")
    try:
        with tracing.span("test", "work", tracing.parse(CALLER)) as context:
            logging.getLogger("upr.test").info("inside")
        line = capsys.readouterr().err.strip().splitlines()[-1]
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    record = json.loads(line)
    assert record["trace_id"] == TRACE_ID and record["span_id"] == context.span_id


def test_spans_go_to_an_otlp_endpoint_when_one_is_set() -> None:
    """With the `otel` extra installed and an endpoint set, spans are exported over OTLP/HTTP."""
    pytest.importorskip("opentelemetry.sdk")
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    import http.server
    import threading

    received: list[tuple[str, bytes]] = []

    class Collector(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        assert tracing.configure_exporter("otel-test", endpoint)
        with tracing.span("otel-test", "POST", tracing.parse(CALLER)) as context:
            assert context.trace_id == TRACE_ID and context.span_id != "00f067aa0ba902b7"
            assert tracing.current_traceparent() == context.traceparent
        tracing.shutdown_exporter("otel-test")  # flushes
    finally:
        server.shutdown()
        server.server_close()
    assert [path for path, _ in received] == ["/v1/traces"]
    body = received[0][1]
    assert bytes.fromhex(TRACE_ID) in body and bytes.fromhex(context.span_id) in body
    assert b"upr-otel-test" in body


def test_no_exporter_without_an_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in tracing.OTLP_ENDPOINT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert tracing.configure_exporter("otel-none") is False
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert tracing.otlp_endpoint() == "http://127.0.0.1:4318"
