"""Security fixtures: the three-service stack of tests/notifications, reused as is."""

from __future__ import annotations

from tests.notifications.conftest import (  # noqa: F401 - fixtures
    Stack,
    sms_sink,
    smtp_sink,
    stack,
    stack_settings,
)
