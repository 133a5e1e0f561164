"""Outbox and inbox on real PostgreSQL and JetStream."""

from __future__ import annotations

import asyncio
import contextlib

from sqlalchemy import func, select

from shared.bus import Bus
from shared.events import Envelope, RecommendationCreated
from shared.inbox import ProcessedEvent, idempotent
from shared.outbox import OutboxMessage, OutboxRelay, outbox_backlog, record_event

SNAPSHOT = {
    "id": "KHM-2-118.17",
    "mechanism": "upr",
    "text": "Establish a law on freedom of information",
    "state_under_review": {"iso3": "KHM", "name": "Cambodia"},
    "recommending_states": [{"iso3": "BEL", "name": "Belgium"}],
    "version": 1,
}


def created() -> RecommendationCreated:
    return RecommendationCreated.model_validate({"recommendation": SNAPSHOT})


async def test_rolled_back_events_are_never_published(session_factory, bus: Bus) -> None:
    relay = OutboxRelay(session_factory, bus)
    async with session_factory() as session:
        record_event(session, created(), source="test", subject="KHM-2-118.17")
        await session.rollback()
    assert await relay.run_once() == (0, 0)
    info = await bus.js.stream_info(bus.stream)
    assert info.state.messages == 0


async def test_committed_events_are_published_once_and_kept(session_factory, bus: Bus) -> None:
    relay = OutboxRelay(session_factory, bus)
    async with session_factory() as session:
        envelope = record_event(session, created(), source="test", subject="KHM-2-118.17")
        await session.commit()
    async with session_factory() as session:
        assert (await outbox_backlog(session))[0] == 1
    assert await relay.run_once() == (1, 0)
    assert await relay.run_once() == (0, 0)
    async with session_factory() as session:
        row = await session.scalar(select(OutboxMessage))
        assert row is not None and row.published_at is not None
        assert (await outbox_backlog(session))[0] == 0
    sub = await bus.js.pull_subscribe(f"{bus.namespace}.>", durable="check", stream=bus.stream)
    [msg] = await sub.fetch(1, timeout=5)
    assert msg.headers["Nats-Msg-Id"] == envelope.id
    assert Envelope.model_validate_json(msg.data).payload().recommendation.id == "KHM-2-118.17"


async def test_the_relay_wakes_on_commit(session_factory, bus: Bus) -> None:
    relay = OutboxRelay(session_factory, bus, poll_interval=30)
    relay.start()
    try:
        await asyncio.sleep(0.1)
        async with session_factory() as session:
            record_event(session, created(), source="test", subject="KHM-2-118.17")
            await session.commit()
        async with asyncio.timeout(5):
            while relay.published < 1:
                await asyncio.sleep(0.02)
    finally:
        await relay.stop()


async def test_inbox_gives_one_effect_per_event(session_factory) -> None:
    effects: list[str] = []

    async def handle(session, envelope: Envelope) -> None:
        effects.append(envelope.id)

    handler = idempotent(session_factory, "test-consumer", handle)
    event = Envelope.wrap(created(), source="test", subject="x")
    for _ in range(3):
        await handler(event)
    await asyncio.gather(
        *(handler(Envelope.wrap(created(), source="t", subject="y")) for _ in range(1))
    )
    assert effects.count(event.id) == 1
    async with session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(ProcessedEvent)) == 2


async def test_a_failed_handler_leaves_no_inbox_row(session_factory) -> None:
    async def handle(session, envelope: Envelope) -> None:
        raise RuntimeError("boom")

    handler = idempotent(session_factory, "test-consumer", handle)
    event = Envelope.wrap(created(), source="test", subject="x")
    for _ in range(2):
        with contextlib.suppress(RuntimeError):
            await handler(event)
    async with session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(ProcessedEvent)) == 0


async def test_the_relay_recreates_a_missing_stream(session_factory, bus: Bus) -> None:
    await bus.js.delete_stream(bus.stream)
    relay = OutboxRelay(session_factory, bus, poll_interval=0.1)
    relay.start()
    try:
        async with session_factory() as session:
            record_event(session, created(), source="test", subject="KHM-2-118.17")
            await session.commit()
        async with asyncio.timeout(15):
            while relay.published < 1:
                await asyncio.sleep(0.05)
    finally:
        await relay.stop()
    info = await bus.js.stream_info(bus.stream)
    assert info.state.messages == 1
