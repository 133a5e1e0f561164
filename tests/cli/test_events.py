"""`upr events replay` re-delivers to a durable consumer; the inbox keeps it harmless."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from sqlalchemy.ext.asyncio import AsyncSession

from cli.common import parse_since
from services.catalog.app import MIGRATIONS
from shared import migrate
from shared.bus import Bus
from shared.db import create_engine, create_session_factory
from shared.events import Envelope
from shared.inbox import idempotent
from tests.cli.conftest import Invoke, envelope, until


async def test_replay_redelivers_since_a_time_and_the_inbox_skips_them(
    bus: Bus, cli_env: str, upr: Invoke, postgres_url: str
) -> None:
    engine = create_engine(postgres_url)
    await migrate.upgrade(engine, Path(MIGRATIONS))  # any service's tables hold the inbox
    factory = create_session_factory(engine)
    deliveries: list[int] = []
    effects: list[int] = []

    async def effect(session: AsyncSession, env: Envelope) -> None:
        effects.append(env.data["n"])

    inner = idempotent(factory, "tcli-replay", effect)

    async def handler(env: Envelope) -> None:
        deliveries.append(env.data["n"])
        await inner(env)

    consumer = bus.consume("tcli-replay", ["upr.test.thing.happened"], handler)
    try:
        for n in (1, 2):
            await bus.publish(envelope(n))
        await until(lambda: len(deliveries) == 2)
        await asyncio.sleep(0.5)
        since = datetime.now(UTC).isoformat()
        await asyncio.sleep(0.5)
        for n in (3, 4):
            await bus.publish(envelope(n))
        await until(lambda: len(deliveries) == 4)

        dry = await upr(
            "events", "replay", "--consumer", "tcli-replay", "--since", since, "--dry-run"
        )
        assert dry.exit_code == 0, dry.output
        assert "would receive 2 event(s) again" in dry.stdout
        await asyncio.sleep(0.5)
        assert sorted(deliveries) == [1, 2, 3, 4]

        replayed = await upr(
            "events", "replay", "--consumer", "tcli-replay", "--since", since, "--json"
        )
        assert replayed.exit_code == 0, replayed.output
        plan = json.loads(replayed.stdout)
        assert plan["events"] == 2 and plan["consumer"] == "tcli-replay"
        # The running consumer's subscription keeps working across the recreated durable.
        await until(lambda: sorted(deliveries) == [1, 2, 3, 3, 4, 4])
        await asyncio.sleep(0.3)  # the second delivery's handler finishes
        assert sorted(effects) == [1, 2, 3, 4]

        # A service restart re-creates its durable with its own settings: it must keep the
        # replay's start (the server refuses to change it) and go on consuming.
        await consumer.stop()
        await asyncio.sleep(1.2)  # the stopped consumer's last pull request expires (1 s)
        consumer = bus.consume("tcli-replay", ["upr.test.thing.happened"], handler)
        await bus.publish(envelope(5))
        await until(lambda: sorted(effects) == [1, 2, 3, 4, 5])

        listed = await upr("events", "consumers", "--json")
        assert listed.exit_code == 0, listed.output
        (row,) = json.loads(listed.stdout)
        assert row["name"] == "tcli-replay" and row["pending"] == 0
    finally:
        await consumer.stop()
        await engine.dispose()


async def test_replay_never_skips_what_was_not_acknowledged(
    bus: Bus, cli_env: str, upr: Invoke
) -> None:
    seen: list[int] = []
    consumer = bus.consume("tcli-behind", ["upr.test.thing.happened"], _record(seen))
    await until(lambda: consumer._task is not None)
    await asyncio.sleep(0.3)
    await consumer.stop()  # the service is down while events arrive
    for n in (1, 2, 3):
        await bus.publish(envelope(n))
    await asyncio.sleep(1.1)
    # --since after all three: they are older, but the consumer never acknowledged them.
    since = datetime.now(UTC).isoformat()
    result = await upr("events", "replay", "--consumer", "tcli-behind", "--since", since)
    assert result.exit_code == 0, result.output
    assert "receive 3 event(s)" in result.stdout
    assert "the first event it has not acknowledged" in result.stdout
    consumer = bus.consume("tcli-behind", ["upr.test.thing.happened"], _record(seen))
    await until(lambda: sorted(seen) == [1, 2, 3])
    await consumer.stop()


def _record(seen: list[int]):
    async def handler(env: Envelope) -> None:
        seen.append(env.data["n"])

    return handler


async def test_replay_errors_are_plain(cli_env: str, upr: Invoke, bus: Bus) -> None:
    unknown = await upr("events", "replay", "--service", "notifications", "--since", "1h")
    assert unknown.exit_code == 1
    assert "no consumer 'notifications'" in unknown.stderr
    neither = await upr("events", "replay", "--since", "1h")
    assert neither.exit_code == 2 and "--consumer" in neither.stderr
    bad_time = await upr("events", "replay", "--service", "monitoring", "--since", "yesterday")
    assert bad_time.exit_code == 2 and "not a time" in bad_time.output


def test_since_accepts_times_dates_and_durations() -> None:
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    assert parse_since("6h", now) == datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
    assert parse_since("2d", now) == datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    assert parse_since("2026-11-27", now) == datetime(2026, 11, 27, tzinfo=UTC)
    assert parse_since("2026-11-27T09:30:00", now) == datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
    assert parse_since("2026-11-27T16:30:00+07:00", now) == datetime(
        2026, 11, 27, 9, 30, tzinfo=UTC
    )
    assert parse_since("2026-11-27T09:30:00Z", now) == datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
    with pytest.raises(typer.BadParameter):
        parse_since("last tuesday", now)
