"""kill -9 the catalog between its database commit and the publish: the outbox publishes the
events after the restart, each once."""

from __future__ import annotations

from pathlib import Path

import httpx

from cli.nats_server import NatsServer, free_port
from tests.faults.conftest import environment, eventually, query, stream_messages, summary
from tests.notifications.conftest import DEMO
from tests.support.processes import ServiceProcess


async def test_outbox_publishes_after_the_service_is_killed(
    private_nats: NatsServer, make_database, namespace: str, admin_key: str, tmp_path: Path
) -> None:
    database_url = await make_database()
    settings = {
        "environment": "test",
        "nats_namespace": namespace,
        "admin_api_key": admin_key,
        "catalog_database_url": database_url,
        "log_level": "WARNING",
    }
    # First life: the broker is unreachable, so every committed event waits in the outbox.
    unreachable = f"nats://127.0.0.1:{free_port()}"
    catalog = ServiceProcess(
        "catalog", environment(**settings, nats_url=unreachable), tmp_path / "catalog.log"
    ).start()
    try:
        async with httpx.AsyncClient(base_url=catalog.url, timeout=60) as client:
            response = await client.post(
                "/v1/imports",
                params={"format": "positions-csv"},
                content=DEMO.read_bytes(),
                headers={"Authorization": f"Bearer {admin_key}"},
            )
        assert response.status_code == 200, response.text
    finally:
        catalog.kill()
    written = await query(database_url, "SELECT event_id, published_at FROM outbox")
    committed = await query(database_url, "SELECT count(*) FROM recommendations")
    assert committed[0][0] == len(written) > 200
    assert all(row["published_at"] is None for row in written)

    # Second life: the broker is there; the relay publishes what the first life committed.
    catalog = ServiceProcess(
        "catalog", environment(**settings, nats_url=private_nats.url), tmp_path / "catalog.log"
    ).start()
    try:

        async def relayed() -> bool:
            [row] = await query(
                database_url, "SELECT count(*) FROM outbox WHERE published_at IS NULL"
            )
            return row[0] == 0

        await eventually(relayed, timeout=60, interval=0.2)
    finally:
        catalog.stop()
    seen = [
        m.headers["Nats-Msg-Id"]
        for m in await stream_messages(private_nats.url, namespace.upper(), f"{namespace}.>")
    ]
    expected = {row["event_id"] for row in written}
    lost = len(expected - set(seen))
    dup = len(seen) - len(set(seen))
    print(
        summary(
            "service kill -9 between commit and publish",
            events_sent=len(expected),
            events_in_stream=len(seen),
            duplicates=dup,
            lost=lost,
        )
    )
    assert lost == 0
    assert dup == 0
    assert set(seen) == expected
