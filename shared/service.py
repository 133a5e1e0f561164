"""Lifespan wiring every service shares: database, migrations, bus, outbox relay."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from shared import migrate, tracing
from shared.bus import Bus
from shared.db import create_engine, create_session_factory, ping
from shared.outbox import OutboxRelay

log = logging.getLogger(__name__)


async def _connect(bus: Bus) -> None:
    try:
        await bus.connect()
    except Exception as exc:
        log.error("could not connect to NATS: %r", exc)


@asynccontextmanager
async def run_service(
    app: FastAPI,
    *,
    client_name: str,
    migrations: Path,
    database_server_settings: dict[str, str] | None = None,
) -> AsyncIterator[Bus]:
    """Open the database (migrated), connect the bus and start the relay; undo on exit.

    The service starts even while NATS is unreachable: the bus keeps trying, /readyz says
    so, and the outbox holds events until the relay can publish them.
    """
    settings = app.state.settings
    engine = create_engine(settings.database_url, server_settings=database_server_settings)
    session_factory = create_session_factory(engine)
    app.state.engine = engine
    app.state.session_factory = session_factory
    if settings.migrate_on_start:
        await migrate.upgrade(engine, migrations)
    bus = Bus(settings, client_name=client_name)
    bus.dependency_check = lambda: ping(engine)
    app.state.bus = bus
    relay = OutboxRelay(
        session_factory,
        bus,
        batch_size=settings.outbox_batch_size,
        poll_interval=settings.outbox_poll_interval_s,
    )
    app.state.relay = relay
    connecting = asyncio.create_task(_connect(bus))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(connecting), timeout=5)
    relay.start()
    try:
        yield bus
    finally:
        connecting.cancel()
        await relay.stop()
        await bus.close()
        tracing.shutdown_exporter(bus.service)  # flush the last spans
        await engine.dispose()
