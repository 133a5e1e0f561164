"""The bus against a real JetStream server: dedup, ack, retry, dead letters."""

from __future__ import annotations

import asyncio
import json

import pytest

from shared.bus import Bus, PermanentEventError
from shared.db import ping
from shared.events import Envelope


def envelope(n: int, event_type: str = "upr.catalog.recommendation.created") -> Envelope:
    return Envelope(
        source="test", type=event_type, subject=f"REC-{n}", dataschema="urn:test", data={"n": n}
    )


async def stream_messages(bus: Bus, stream: str) -> int:
    info = await bus.js.stream_info(stream)
    return info.state.messages


async def test_publish_is_deduplicated_by_event_id(bus: Bus) -> None:
    event = envelope(1)
    first = await bus.publish(event)
    second = await bus.publish(event)
    assert not first.duplicate
    assert second.duplicate
    assert await stream_messages(bus, bus.stream) == 1


async def test_publish_many_reports_each_outcome(bus: Bus) -> None:
    events = [envelope(n) for n in range(50)]
    outcomes = await bus.publish_many(events + events[:5])
    assert all(o.ok for o in outcomes)
    assert sum(o.duplicate for o in outcomes) == 5
    assert await stream_messages(bus, bus.stream) == 50


async def test_subject_follows_the_namespace(bus: Bus, namespace: str) -> None:
    assert bus.subject_for("upr.catalog.recommendation.created") == (
        f"{namespace}.catalog.recommendation.created"
    )
    with pytest.raises(ValueError, match="upr"):
        bus.subject_for("other.thing")


async def test_consumer_retries_a_failing_handler_then_succeeds(bus: Bus) -> None:
    attempts: dict[str, int] = {}
    done = asyncio.Event()

    async def handler(event: Envelope) -> None:
        attempts[event.id] = attempts.get(event.id, 0) + 1
        if attempts[event.id] < 2:
            raise RuntimeError("database blinked")
        done.set()

    await bus.publish(envelope(1))
    consumer = bus.consume("retrying", ["upr.catalog.recommendation.created"], handler)
    await asyncio.wait_for(done.wait(), 15)
    assert list(attempts.values()) == [2]
    assert consumer.dead_lettered == 0


async def test_poison_messages_are_dead_lettered_and_the_consumer_goes_on(
    bus: Bus, nats_client, namespace: str
) -> None:
    handled: list[int] = []

    async def handler(event: Envelope) -> None:
        if event.data.get("n") == 2:
            raise PermanentEventError("impossible data: n=2")
        if event.data.get("n") == 3:
            raise RuntimeError("always fails")
        handled.append(event.data["n"])

    subject = bus.subject_for("upr.catalog.recommendation.created")
    await bus.js.publish(subject, b"this is not json", headers={"Nats-Msg-Id": "garbage"})
    for n in (1, 2, 3, 4):
        await bus.publish(envelope(n))
    consumer = bus.consume("poisoned", ["upr.catalog.recommendation.created"], handler)
    async with asyncio.timeout(20):
        while consumer.dead_lettered < 3 or len(handled) < 2:
            await asyncio.sleep(0.05)
    assert handled == [1, 4]

    dlq = await bus.js.pull_subscribe(
        bus.dead_letter_subject("poisoned"), durable="inspect", stream=bus.dead_letter_stream
    )
    msgs = await dlq.fetch(3, timeout=5)
    errors = sorted(m.headers["Upr-Dlq-Error"] for m in msgs)
    assert any("not a valid event envelope" in e for e in errors)
    assert any("impossible data: n=2" in e for e in errors)
    assert any("failed 3 times" in e and "always fails" in e for e in errors)
    bodies = [m.data for m in msgs]
    assert b"this is not json" in bodies
    assert any(json.loads(b).get("data") == {"n": 2} for b in bodies if b.startswith(b"{"))


async def test_a_stopped_consumer_starts_again_where_it_left_off(bus: Bus) -> None:
    seen: list[int] = []

    async def handler(event: Envelope) -> None:
        seen.append(event.data["n"])

    consumer = bus.consume("restartable", ["upr.catalog.recommendation.created"], handler)
    await bus.publish(envelope(1))
    async with asyncio.timeout(15):
        while seen != [1]:
            await asyncio.sleep(0.02)
    await consumer.stop()
    # The stopped consumer's last pull request expires on the server within a second; an event
    # it took in that second would come back only after the ack wait (delayed, never lost).
    await asyncio.sleep(1.2)
    await bus.publish(envelope(2))
    consumer.start()
    async with asyncio.timeout(15):
        while seen != [1, 2]:
            await asyncio.sleep(0.02)
    await consumer.stop()


async def test_a_handler_timing_out_while_the_database_answers_is_dead_lettered(
    bus: Bus, engine
) -> None:
    # A timeout looks like an outage; the database answering says it is this event's own.
    bus.dependency_check = lambda: ping(engine)
    calls: list[int] = []

    async def handler(event: Envelope) -> None:
        calls.append(event.data["n"])
        if event.data["n"] == 1:
            raise TimeoutError("this event's query never finishes")

    await bus.publish(envelope(1))
    await bus.publish(envelope(2))
    consumer = bus.consume("slow", ["upr.catalog.recommendation.created"], handler)
    async with asyncio.timeout(20):
        while consumer.dead_lettered < 1 or 2 not in calls:
            await asyncio.sleep(0.05)
    assert calls.count(1) == bus.settings.consumer_max_deliver
    await consumer.stop()


async def test_a_handler_failing_while_the_database_is_down_holds_its_event(bus: Bus) -> None:
    # The check fails (the database is unreachable): the consumer pauses on the event, spending
    # none of its deliveries, and handles it once the database is back.
    database_up = asyncio.Event()

    async def check() -> None:
        if not database_up.is_set():
            raise ConnectionRefusedError("database down")

    bus.dependency_check = check
    calls: list[int] = []

    async def handler(event: Envelope) -> None:
        calls.append(event.data["n"])
        if not database_up.is_set():
            raise ConnectionRefusedError("database down")

    await bus.publish(envelope(1))
    consumer = bus.consume("patient", ["upr.catalog.recommendation.created"], handler)
    async with asyncio.timeout(20):
        while len(calls) < 4:  # more attempts than consumer_max_deliver (3)
            await asyncio.sleep(0.05)
    assert consumer.dead_lettered == 0 and consumer.handled == 0
    database_up.set()
    async with asyncio.timeout(20):
        while consumer.handled < 1:
            await asyncio.sleep(0.05)
    assert consumer.dead_lettered == 0
    await consumer.stop()
