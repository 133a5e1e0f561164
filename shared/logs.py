"""Structured JSON logs with request and event ids; e-mail addresses and phone numbers masked."""

from __future__ import annotations

import contextvars
import logging
import re
import sys
from typing import Any

import structlog

from shared import tracing

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
EVENT_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("event_id", default=None)

# An address, also URL-encoded (%40) as in a logged query string.
EMAIL = re.compile(
    r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*(?:@|%40)([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})"
)
# A number written with + (or %2B): digits with spaces, dashes, dots or brackets between them.
PHONE = re.compile(r"(?:\+|%2[Bb])\(?\d(?:[\d\- .()]|%20){6,}\d")
MIN_PHONE_DIGITS = 8
# Signed-link tokens and other credentials in a logged URL (access logs, httpx).
SECRET_PARAM = re.compile(
    r"([?&](?:token|code|key|api_key|secret|password|signature)=)[^&\s\"'#]+", re.IGNORECASE
)


def _mask_phone(match: re.Match[str]) -> str:
    number = match.group(0)
    number = number[3:] if number.startswith("%") else number
    digits = re.sub(r"\D", "", number.replace("%20", ""))
    if len(digits) < MIN_PHONE_DIGITS:
        return match.group(0)
    return "+***" + digits[-3:]


def mask(text: str) -> str:
    """Mask addresses (a***@example.org), phone numbers (+***678) and URL tokens (token=***)."""
    text = SECRET_PARAM.sub(r"\1***", text)
    return PHONE.sub(_mask_phone, EMAIL.sub(r"\1***@\2", text))


def mask_value(value: Any) -> Any:
    """Mask every string in a value, inside lists, tuples and dictionaries too."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {mask_value(k): mask_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [mask_value(v) for v in value]
    return value


def _mask_values(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for key, value in list(event.items()):
        if isinstance(value, str | list | tuple | set | dict):
            event[key] = mask_value(value)
        elif isinstance(value, BaseException):
            event[key] = mask(repr(value))
    return event


def _correlation(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    if (request_id := REQUEST_ID.get()) is not None:
        event.setdefault("request_id", request_id)
    if (event_id := EVENT_ID.get()) is not None:
        event.setdefault("event_id", event_id)
    if (trace := tracing.current()) is not None:
        event.setdefault("trace_id", trace.trace_id)
        event.setdefault("span_id", trace.span_id)
    return event


def configure_logging(service: str, level: str = "INFO", *, json: bool = True) -> None:
    """Route the standard library's and structlog's logs through one JSON formatter."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _correlation,
        structlog.processors.format_exc_info,
    ]
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            lambda _, __, event: {**event, "service": service},
            _mask_values,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
        logging.getLogger(name).setLevel(logging.NOTSET)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
