"""Structured JSON logs with request and event ids; e-mail addresses and phone numbers masked."""

from __future__ import annotations

import contextvars
import logging
import re
import sys
from typing import Any

import structlog

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
EVENT_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("event_id", default=None)

EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
PHONE = re.compile(r"\+\d[\d ]{6,}(\d{3})\b")


def mask(text: str) -> str:
    """Mask e-mail addresses (a***@example.org) and phone numbers (+***678) in a text."""
    return PHONE.sub(r"+***\1", EMAIL.sub(r"\1***@\2", text))


def _mask_values(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for key, value in list(event.items()):
        if isinstance(value, str):
            event[key] = mask(value)
    return event


def _correlation(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    if (request_id := REQUEST_ID.get()) is not None:
        event.setdefault("request_id", request_id)
    if (event_id := EVENT_ID.get()) is not None:
        event.setdefault("event_id", event_id)
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
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
