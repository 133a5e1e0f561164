"""The embedded default: SQLite file, demo set seeded at start, events still on NATS."""

from __future__ import annotations

from pathlib import Path

from services.catalog.app import create_app
from services.catalog.settings import CatalogSettings


async def test_sqlite_catalog_seeds_the_demo_and_answers(
    tmp_path: Path, nats_url: str, namespace: str, admin_key: str, http_client_for, events
) -> None:
    settings = CatalogSettings(
        environment="test",
        database_url=f"sqlite+aiosqlite:///{tmp_path}/catalog.db",
        nats_url=nats_url,
        nats_namespace=namespace,
        admin_api_key=admin_key,
        seed_demo=True,
        outbox_poll_interval_s=0.2,
    )
    async with http_client_for(create_app(settings)) as client:
        await events.start()
        page = (await client.get("/v1/recommendations", params={"limit": 5})).json()
        assert page["total"] == 205
        facets = (await client.get("/v1/recommendations/facets")).json()["facets"]
        assert facets["response"] == {"supported": 163, "noted": 42}
        noted = (
            await client.get("/v1/recommendations/facets", params={"response": "noted"})
        ).json()
        assert noted["total"] == 42 and noted["facets"]["response"] == {"noted": 42}
        assert noted["facets"]["state_under_review"] == {"KHM": 42}
        assert sum(noted["facets"]["issue"].values()) >= 42
        search = (
            await client.get("/v1/recommendations", params={"q": "standing invitation"})
        ).json()
        assert {"119.13", "119.14", "119.15"} <= {i["number"] for i in search["items"]}
        created = await events.wait_for(205, type="upr.catalog.recommendation.created")
        assert len(created) == 205

        headers = {"Authorization": f"Bearer {admin_key}"}
        response = await client.post(
            "/v1/recommendations/KHM-2-118.17/responses",
            json={"position": "noted", "declared_label": "rejected"},
            headers=headers,
        )
        assert response.status_code == 201
        [changed] = await events.wait_for(1, type="upr.catalog.recommendation.response_changed")
        assert changed["data"]["previous"]["position"] == "supported"
        assert changed["data"]["recommendation"]["response"]["declared_label"] == "rejected"

    # A restart finds the data and does not seed twice.
    async with http_client_for(create_app(settings)) as client:
        page = (await client.get("/v1/recommendations", params={"limit": 1})).json()
        assert page["total"] == 205
