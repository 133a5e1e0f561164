"""Rate limits (OWASP API4): per key and per client address on writes, tighter on
self-service subscription; 429 problem+json with Retry-After."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from services.catalog.app import create_app as create_catalog
from services.catalog.settings import CatalogSettings
from services.notifications.app import create_app as create_notifications
from services.notifications.settings import NotificationsSettings
from shared.ratelimit import RateLimits


@asynccontextmanager
async def running(app) -> AsyncIterator:
    async with app.router.lifespan_context(app):
        yield app


def client(app, address: str) -> httpx.AsyncClient:
    """A client calling from an address of its own."""
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


def common(nats_url: str, namespace: str, admin_key: str, **limits) -> dict:
    return {
        "environment": "test",
        "nats_url": nats_url,
        "nats_namespace": namespace,
        "admin_api_key": admin_key,
        "rate_limit_enabled": True,
        **limits,
    }


def assert_throttled(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert response.json()["retry_after"] == int(response.headers["retry-after"])


async def test_writes_are_limited_per_key_and_per_address(
    postgres_url, nats_url, namespace, admin_key, nats_client
) -> None:
    settings = CatalogSettings(
        database_url=postgres_url,
        **common(nats_url, namespace, admin_key, rate_limit_writes="3/minute"),
    )
    app = create_catalog(settings)
    admin = {"Authorization": f"Bearer {admin_key}"}
    recompute = ("/v1/clusters/recompute", {"state_under_review": "KHM"})
    async with running(app), client(app, "10.0.0.1") as one, client(app, "10.0.0.2") as two:
        keys = []
        for n in range(2):
            response = await one.post(
                "/v1/keys", json={"name": f"editor {n}", "role": "editor"}, headers=admin
            )
            assert response.status_code == 201
            keys.append({"Authorization": f"Bearer {response.json()['key']}"})
        # 10.0.0.1 has made two writes: one more, whatever the key, then 429.
        assert (await one.post(recompute[0], params=recompute[1], headers=keys[0])).is_success
        assert_throttled(await one.post(recompute[0], params=recompute[1], headers=keys[1]))
        from prometheus_client import REGISTRY

        labels = {"service": "catalog", "method": "POST", "route": "unmatched", "status": "429"}
        before = REGISTRY.get_sample_value("upr_http_request_duration_seconds_count", labels) or 0
        assert_throttled(await one.post("/v1/keys", json={}))  # even before the key check
        # Refused by the middleware before routing, and still counted in the request metric.
        after = REGISTRY.get_sample_value("upr_http_request_duration_seconds_count", labels)
        assert after == before + 1
        # Reads are not limited.
        for _ in range(5):
            assert (await one.get("/v1/recommendations")).status_code == 200
        # Key 0 has made one write: two more from another address, then 429 for the key...
        for _ in range(2):
            ok = await two.post(recompute[0], params=recompute[1], headers=keys[0])
            assert ok.status_code == 200, ok.text
        async with client(app, "10.0.0.3") as three:
            assert_throttled(await three.post(recompute[0], params=recompute[1], headers=keys[0]))
            # ...while key 1 from a fresh address still writes.
            response = await three.post(recompute[0], params=recompute[1], headers=keys[1])
            assert response.status_code == 200


async def test_self_service_subscription_is_limited_per_address(
    postgres_url, nats_url, namespace, admin_key, nats_client
) -> None:
    settings = NotificationsSettings(
        database_url=postgres_url,
        secret_key="test-notifications-secret-0123456789",
        smtp_port=1,
        sms_gateway_secret="test-sms-gateway-secret-0123456789",
        **common(nats_url, namespace, admin_key, rate_limit_subscribe="2/minute"),
    )
    app = create_notifications(settings)
    async with running(app), client(app, "10.0.0.1") as one, client(app, "10.0.0.2") as two:
        for n in range(2):
            response = await one.post("/v1/subscribe", json={"email": f"r{n}@example.org"})
            assert response.status_code == 202, response.text
        assert_throttled(await one.post("/v1/subscribe", json={"email": "r3@example.org"}))
        # Guessing SMS confirmation codes counts against the same limit.
        assert_throttled(
            await one.post("/v1/confirm", json={"phone": "+85512345678", "code": "123456"})
        )
        wrong = await two.post("/v1/confirm", json={"phone": "+85512345678", "code": "123456"})
        assert wrong.status_code == 403
        assert (await two.post("/v1/subscribe", json={"email": "r4@example.org"})).is_success
        assert_throttled(await two.post("/v1/subscribe", json={"email": "r5@example.org"}))
        listed = await two.get(
            "/v1/subscriptions", headers={"Authorization": f"Bearer {admin_key}"}
        )
        assert len(listed.json()) == 3

        # One destination from many addresses: limited too (no mail-bombing, no code guessing).
        for n, address in enumerate(("10.0.1.1", "10.0.1.2", "10.0.1.3")):
            async with client(app, address) as caller:
                subscribe = await caller.post("/v1/subscribe", json={"email": "victim@example.org"})
                guess = await caller.post(
                    "/v1/confirm", json={"phone": "+85599999999", "code": f"00000{n}"}
                )
            if n < 2:
                assert subscribe.status_code == 202 and guess.status_code == 403
            else:
                assert_throttled(subscribe)
                assert_throttled(guess)


@pytest.mark.parametrize(
    ("environment", "enabled", "expected"),
    [("test", None, False), ("dev", None, True), ("production", None, True), ("test", True, True)],
)
def test_limits_are_on_outside_tests_unless_turned_off(environment, enabled, expected) -> None:
    settings = CatalogSettings(
        environment=environment,
        admin_api_key="a-real-admin-key-0123456789",
        rate_limit_enabled=enabled,
    )
    limits = RateLimits.from_settings(settings)
    assert limits.enabled is expected
    assert str(limits.writes) == "600 per 1 minute" and str(limits.subscribe) == "5 per 1 minute"


def test_a_bad_limit_is_refused_at_startup() -> None:
    with pytest.raises(ValueError):
        RateLimits(writes="lots", subscribe="5/minute")
