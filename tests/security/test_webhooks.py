"""Gateway callbacks and webhooks are HMAC-signed with a timestamp (Standard Webhooks); a
receiver refuses them stale, altered, replayed under another id, or unsigned (OWASP API10).

The verifier's unit tests are in tests/notifications/test_channels.py; this checks a real
receiver over HTTP: the SMS gateway sink of cli/sinks.py, which verifies with verify_webhook.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from cli.sinks import SmsSink
from services.notifications.channels import signed_headers

SECRET = "whsec_" + "c2VjcmV0LWZvci10aGUtZ2F0ZXdheS10ZXN0"


@pytest.fixture
def gateway() -> Iterator[SmsSink]:
    sink = SmsSink(secret=SECRET).start()
    yield sink
    sink.stop()


def test_the_gateway_accepts_only_fresh_unaltered_signed_requests(gateway: SmsSink) -> None:
    body = json.dumps({"to": "+85512345678", "from": "UPR", "text": "hello", "id": "m1"}).encode()
    now = time.time()

    def post(content: bytes, headers: dict[str, str]) -> httpx.Response:
        return httpx.post(gateway.url, content=content, headers=headers, timeout=5)

    fresh = signed_headers(SECRET, "m1", body, now=now)
    assert post(body, fresh).status_code < 300
    # A minute beyond the 300 s tolerance: timestamps are whole seconds, and the requests before
    # this one take time, so now + 301 could be read as 299.x seconds ahead.
    refused = {
        "stale": (body, signed_headers(SECRET, "m1", body, now=now - 360)),
        "from the future": (body, signed_headers(SECRET, "m1", body, now=now + 360)),
        "altered body": (body.replace(b"hello", b"HELLO"), fresh),
        "other message id": (body, {**fresh, "webhook-id": "m2"}),
        "wrong secret": (body, signed_headers("whsec_b3RoZXItc2VjcmV0", "m1", body, now=now)),
        "unsigned": (body, {"content-type": "application/json"}),
        "timestamp moved": (body, {**fresh, "webhook-timestamp": str(int(now) + 1)}),
    }
    for name, (content, headers) in refused.items():
        response = post(content, headers)
        assert response.status_code == 401, name
    assert len(gateway.requests) == 1 and gateway.hits == 1 + len(refused)
