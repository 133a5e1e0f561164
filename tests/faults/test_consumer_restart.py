"""A durable consumer keeps consuming after the broker is killed and restarted."""

from __future__ import annotations

import asyncio

from cli.nats_server import NatsServer
from shared.bus import Bus
from shared.events import Envelope
from shared.settings import BaseServiceSettings
from tests.faults.conftest import summary


def envelope(n: int) -> Envelope:
    return Envelope(
        source="test",
        type="upr.catalog.recommendation.updated",
        subject=str(n),
        dataschema="urn:test",
        data={"n": n},
    )


async def test_consumer_survives_a_broker_restart(private_nats: NatsServer) -> None:
    settings = BaseServiceSettings(
        environment="test", nats_url=private_nats.url, nats_namespace="restart"
    )
    publisher, consumer_bus = Bus(settings, "publisher"), Bus(settings, "consumer")
    await publisher.connect(attempts=5)
    await consumer_bus.connect(attempts=5)
    seen: list[int] = []

    async def handler(event: Envelope) -> None:
        seen.append(event.data["n"])

    consumer_bus.consume("survivor", ["upr.catalog.recommendation.updated"], handler)
    try:
        for n in range(50):
            await publisher.publish(envelope(n))
        async with asyncio.timeout(15):
            while len(set(seen)) < 50:
                await asyncio.sleep(0.05)
        private_nats.kill()
        await asyncio.sleep(1.0)
        private_nats.start()
        async with asyncio.timeout(30):
            while True:
                try:
                    for n in range(50, 100):
                        await publisher.publish(envelope(n))
                    break
                except Exception:
                    await asyncio.sleep(0.5)
        async with asyncio.timeout(30):
            while len(set(seen)) < 100:
                await asyncio.sleep(0.05)
    finally:
        await consumer_bus.close()
        await publisher.close()
    lost = 100 - len(set(seen))
    print(
        summary(
            "consumer across broker kill -9",
            events_sent=100,
            events_handled=len(set(seen)),
            redelivered=len(seen) - len(set(seen)),
            lost=lost,
        )
    )
    assert lost == 0
