"""W3C trace context: from the HTTP request, through the outbox and NATS, to the next handler.

The current trace lives in a contextvar. An HTTP request or a consumed event opens a span: it
keeps the caller's trace id (or starts a trace) and gets a span id of its own. Every event
recorded meanwhile carries that span as its `traceparent` (CloudEvents extension and NATS
header), so the consumer that handles it continues the same trace. When an OTLP endpoint is
set and the OpenTelemetry SDK is installed, the spans are also exported; otherwise nothing
but the ids is kept.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
OTLP_ENDPOINT_VARIABLES = ("UPR_OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


@dataclass(frozen=True)
class TraceContext:
    """A position in a trace: the trace id, the current span id and the sampled flag."""

    trace_id: str
    span_id: str
    flags: str = "01"

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


CURRENT: contextvars.ContextVar[TraceContext | None] = contextvars.ContextVar(
    "trace_context", default=None
)


def parse(value: str | None) -> TraceContext | None:
    """A traceparent header's context, or None when it is absent or malformed."""
    if not value:
        return None
    match = _TRACEPARENT.match(value.strip().lower())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    # Version ff is forbidden; version 00 has nothing after the flags; ids are never all zero.
    if version == "ff" or (version == "00" and rest) or not int(trace_id, 16):
        return None
    if not int(span_id, 16):
        return None
    return TraceContext(trace_id, span_id, flags)


def new_span_id() -> str:
    """A random, non-zero 64-bit span id in hex."""
    return secrets.token_hex(8).replace("0000000000000000", "0000000000000001")


def child_of(parent: TraceContext | None) -> TraceContext:
    """A new span in the parent's trace, or the root span of a new trace."""
    if parent is None:
        return TraceContext(secrets.token_hex(16), new_span_id())
    return TraceContext(parent.trace_id, new_span_id(), parent.flags)


def current() -> TraceContext | None:
    """The trace context of the running request or event handler."""
    return CURRENT.get()


def current_traceparent() -> str | None:
    """The traceparent to put on an event recorded now (None outside any trace)."""
    context = CURRENT.get()
    return context.traceparent if context is not None else None


# --- optional OpenTelemetry export ---------------------------------------------------------

_providers: dict[str, Any] = {}


def otlp_endpoint() -> str | None:
    """The OTLP/HTTP endpoint from the environment, if one is set."""
    for name in OTLP_ENDPOINT_VARIABLES:
        if value := os.environ.get(name, "").strip():
            return value
    return None


def configure_exporter(service: str, endpoint: str | None = None) -> bool:
    """Export this service's spans over OTLP/HTTP when an endpoint is set and the SDK installed."""
    endpoint = endpoint or otlp_endpoint()
    if not endpoint or service in _providers:
        return service in _providers
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(
            "an OTLP endpoint is set but OpenTelemetry is not installed "
            "(pip install 'upr-tracker[otel]'); spans are not exported"
        )
        return False
    url = endpoint.rstrip("/")
    if not url.endswith("/v1/traces"):
        url += "/v1/traces"
    provider = TracerProvider(resource=Resource.create({"service.name": f"upr-{service}"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    _providers[service] = provider
    log.info("exporting spans of %s to %s", service, url)
    return True


def shutdown_exporter(service: str) -> None:
    """Flush and stop this service's exporter (at shutdown)."""
    provider = _providers.pop(service, None)
    if provider is not None:
        provider.shutdown()


@contextlib.contextmanager
def _otel_span(
    provider: Any, name: str, parent: TraceContext | None, kind: str, attributes: dict[str, Any]
) -> Iterator[TraceContext]:
    from opentelemetry import trace
    from opentelemetry.context import Context
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    context = (
        TraceContextTextMapPropagator().extract({"traceparent": parent.traceparent})
        if parent is not None
        else Context()
    )
    tracer = provider.get_tracer("upr-tracker")
    span_kind = {"server": trace.SpanKind.SERVER, "consumer": trace.SpanKind.CONSUMER}[kind]
    with tracer.start_as_current_span(
        name, context=context, kind=span_kind, attributes=attributes
    ) as otel:
        ids = otel.get_span_context()
        trace_id, span_id = format(ids.trace_id, "032x"), format(ids.span_id, "016x")
        yield TraceContext(trace_id, span_id, format(ids.trace_flags, "02x"))


@contextlib.contextmanager
def span(
    service: str,
    name: str,
    parent: TraceContext | None,
    *,
    kind: str = "server",
    attributes: dict[str, Any] | None = None,
) -> Iterator[TraceContext]:
    """Run the block as a span of the parent's trace (or of a new trace), as the current one."""
    provider = _providers.get(service)
    with contextlib.ExitStack() as stack:
        if provider is not None:
            context = stack.enter_context(
                _otel_span(provider, name, parent, kind, attributes or {})
            )
        else:
            context = child_of(parent)
        token = CURRENT.set(context)
        try:
            yield context
        finally:
            CURRENT.reset(token)


class TraceMiddleware:
    """Continue the caller's trace (`traceparent` header) or start one for each request."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"traceparent"), "")
        attributes = {"http.request.method": scope["method"], "url.path": scope["path"]}
        with span(self.service, scope["method"], parse(header), attributes=attributes):
            await self.app(scope, receive, send)
