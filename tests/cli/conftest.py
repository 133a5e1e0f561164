"""Fixtures for the `upr` command: run it in a thread (it runs its own event loop)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from click.testing import Result
from typer.testing import CliRunner

from cli.main import app
from shared.bus import Bus
from shared.events import Envelope
from shared.settings import BaseServiceSettings

Invoke = Callable[..., Awaitable[Result]]


@pytest.fixture
def upr() -> Invoke:
    """Run `upr ARGS...` the way a shell would, off the test's event loop."""
    runner = CliRunner()

    async def invoke(*args: str) -> Result:
        return await asyncio.to_thread(runner.invoke, app, list(args))

    return invoke


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, nats_url: str, namespace: str) -> str:
    """The settings the command reads: this test's NATS namespace, a non-dev environment."""
    monkeypatch.setenv("UPR_NATS_URL", nats_url)
    monkeypatch.setenv("UPR_NATS_NAMESPACE", namespace)
    monkeypatch.setenv("UPR_ENVIRONMENT", "test")
    monkeypatch.setenv("UPR_NOTIFICATIONS_SECRET_KEY", "cli-test-secret-0123456789")
    monkeypatch.setenv("UPR_SMS_GATEWAY_SECRET", "cli-test-sms-secret-0123456789")
    return namespace


@pytest.fixture
async def bus(nats_client, nats_url: str, namespace: str) -> AsyncIterator[Bus]:
    """A connected Bus on the test's namespace (streams created, deleted afterwards)."""
    settings = BaseServiceSettings(
        environment="test",
        nats_url=nats_url,
        nats_namespace=namespace,
        consumer_max_deliver=2,
        consumer_backoff_s=[0.05],
    )
    connected = Bus(settings, client_name="upr-clitest")
    await connected.connect(attempts=3)
    yield connected
    await connected.close()


def envelope(n: int) -> Envelope:
    """A small test event."""
    return Envelope(
        source="urn:upr-tracker:test",
        type="upr.test.thing.happened",
        dataschema="urn:upr-tracker:event:upr.test.thing.happened:v1",
        data={"n": n},
    )


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until the condition holds (fails the test after the timeout)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)
