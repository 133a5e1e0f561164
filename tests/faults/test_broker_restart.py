"""kill -9 the broker while the outbox relay publishes: nothing lost, nothing duplicated."""

from __future__ import annotations

import asyncio

import nats

import shared.auth
import shared.inbox  # noqa: F401 - registers the plumbing tables
from cli.nats_server import NatsServer
from shared.bus import Bus
from shared.db import PlumbingBase, create_engine, create_session_factory
from shared.events import RecommendationCreated
from shared.outbox import OutboxRelay, outbox_backlog, record_event
from shared.settings import BaseServiceSettings
from tests.faults.conftest import summary

EVENTS = 300


def created(n: int) -> RecommendationCreated:
    return RecommendationCreated.model_validate(
        {
            "recommendation": {
                "id": f"KHM-2-118.{n}",
                "mechanism": "upr",
                "text": f"Recommendation {n}",
                "state_under_review": {"iso3": "KHM", "name": "Cambodia"},
                "recommending_states": [{"iso3": "BEL", "name": "Belgium"}],
                "version": 1,
            }
        }
    )


async def test_broker_killed_while_relaying(private_nats: NatsServer, postgres_url: str) -> None:
    settings = BaseServiceSettings(
        environment="test", nats_url=private_nats.url, nats_namespace="fault"
    )
    engine = create_engine(postgres_url)
    async with engine.begin() as conn:
        await conn.run_sync(PlumbingBase.metadata.create_all)
    factory = create_session_factory(engine)
    bus = Bus(settings, client_name="fault-relay")
    await bus.connect(attempts=5)
    relay = OutboxRelay(factory, bus, batch_size=20, poll_interval=0.1)
    relay.start()
    written: list[str] = []
    try:
        for n in range(EVENTS):
            async with factory() as session:
                written.append(record_event(session, created(n), source="test", subject=str(n)).id)
                await session.commit()
            if n == EVENTS // 3:
                private_nats.kill()
            if n == 2 * EVENTS // 3:
                private_nats.start()
            await asyncio.sleep(0.003)
        async with asyncio.timeout(60):
            while True:
                async with factory() as session:
                    backlog, _ = await outbox_backlog(session)
                if backlog == 0:
                    break
                await asyncio.sleep(0.2)
    finally:
        await relay.stop()
        await bus.close()
        await engine.dispose()

    nc = await nats.connect(private_nats.url)
    js = nc.jetstream()
    sub = await js.pull_subscribe("fault.>", durable="audit", stream="FAULT")
    seen: list[str] = []
    while True:
        try:
            msgs = await sub.fetch(100, timeout=1)
        except (nats.errors.TimeoutError, TimeoutError):
            # An empty fetch; nats-py raises the builtin kind when its deadline ran out.
            break
        for msg in msgs:
            seen.append(msg.headers["Nats-Msg-Id"])
            await msg.ack()
    await nc.close()
    duplicates = len(seen) - len(set(seen))
    lost = len(set(written) - set(seen))
    print(
        summary(
            "broker kill -9 during relay",
            events_sent=len(written),
            events_in_stream=len(seen),
            duplicates=duplicates,
            lost=lost,
        )
    )
    assert lost == 0
    assert duplicates == 0
    assert len(seen) == EVENTS
