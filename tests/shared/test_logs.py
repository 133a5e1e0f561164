"""Logs are JSON lines, correlated, and never carry an address or a phone number."""

from __future__ import annotations

import json
import logging

import pytest

from shared.logs import EVENT_ID, REQUEST_ID, configure_logging, mask


def test_mask() -> None:
    assert mask("to embassy.belgium@example.org") == "to e***@example.org"
    assert mask("sms +85512345678 sent") == "sms +***678 sent"


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_with_correlation_and_masking(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    configure_logging("test", "INFO")
    token_r, token_e = REQUEST_ID.set("req-1"), EVENT_ID.set("evt-1")
    try:
        logging.getLogger("upr.test").info(
            "sending to %s and %s", "a.b@example.org", "+85512345678"
        )
    finally:
        REQUEST_ID.reset(token_r)
        EVENT_ID.reset(token_e)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["service"] == "test" and record["level"] == "info"
    assert record["request_id"] == "req-1" and record["event_id"] == "evt-1"
    assert "a.b@example.org" not in line and "+85512345678" not in line
    assert "a***@example.org" in record["event"]
