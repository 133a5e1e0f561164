"""Soak fixtures: the three-service stack of the notifications tests."""

from tests.notifications.conftest import (  # noqa: F401 - fixtures reused by the soak
    Stack,
    sms_sink,
    smtp_sink,
    stack,
    stack_settings,
)
