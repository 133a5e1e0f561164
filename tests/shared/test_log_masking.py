"""A full end-to-end run writes no recipient's address or phone number to the logs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from shared.logs import configure_logging
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
    "language": "km",
}
SUBSCRIBER = {"email": "sokha.defender@example.net", "phone": "+855 97 765 4321"}
# What must never appear: the addresses, their local parts and the numbers' digits.
SECRETS = (
    "embassy.belgium",
    "sokha.defender",
    "85512345678",
    "12345678",
    "855977654321",
    "97 765 4321",
    "7654321",
)


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """Every log record of the process, at DEBUG, through the services' JSON formatter."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("e2e", "DEBUG")
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(root.handlers[0].formatter)
    root.handlers[:] = [handler]
    yield buffer
    root.handlers[:] = handlers
    root.setLevel(level)


async def test_no_address_or_number_in_the_logs_of_a_full_run(
    stack: Stack,  # noqa: F811 - the fixture imported above
    json_logs: io.StringIO,
) -> None:
    embassy = await stack.recipient(**EMBASSY)
    subscribed = await stack.notifications.post(
        "/v1/subscribe",
        json={"email": SUBSCRIBER["email"], "filters": {"recommending_states": ["BEL"]}},
    )
    assert subscribed.status_code in {200, 201, 202}, subscribed.text
    await stack.import_demo()
    adhoc = await stack.monitoring_key("ADHOC")
    await stack.assess(adhoc, REC, "in_progress", summary="Draft law discussed")
    await stack.until(lambda: len(stack.smtp.messages_to(EMBASSY["email"])) == 1)
    await stack.until(lambda: any(r["to"] == EMBASSY["phone"] for r in stack.sms.requests))
    await stack.until(lambda: len(stack.smtp.messages_to(SUBSCRIBER["email"])) >= 1)
    # Admin reads of the addresses, a bad write naming one, and the delivery log.
    assert (
        await stack.notifications.get(f"/v1/recipients/{embassy['id']}", headers=stack.admin)
    ).status_code == 200
    bad = await stack.notifications.post(
        "/v1/recipients",
        json={**EMBASSY, "phone": "+85512345678999999", "email": "embassy.belgium@example.org"},
        headers=stack.admin,
    )
    assert bad.status_code in {409, 422}
    assert len(await stack.deliveries(recipient_id=embassy["id"])) >= 2

    # Records that carry addresses the way uvicorn's access log and a traceback do.
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:50000",
        "GET",
        "/v1/recipients?email=embassy.belgium%40example.org&phone=%2B85512345678"
        "&token=signed-link-token-0123456789",
        "1.1",
        200,
    )
    try:
        raise ValueError(f"cannot reach {SUBSCRIBER['email']} or {SUBSCRIBER['phone']}")
    except ValueError:
        logging.getLogger("upr.test").exception("delivery to %s failed", EMBASSY["phone"])
    structlog.get_logger("upr.test").info(
        "context", to=[EMBASSY["email"]], more={"p": "+85512345678"}
    )

    text = json_logs.getvalue()
    lines = text.splitlines()
    assert len(lines) > 50, "the run should have logged plenty"
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert any(r.get("logger") == "uvicorn.access" for r in records)
    assert any("ValueError" in r.get("exception", "") for r in records)
    assert any("e***@example.org" in r["event"] for r in records)
    assert any(r.get("to") == ["e***@example.org"] for r in records)
    assert "signed-link-token-0123456789" not in text
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked into the logs"
