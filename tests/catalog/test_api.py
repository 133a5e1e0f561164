"""The catalog over HTTP, on real PostgreSQL, with its events seen on real NATS."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Callable
from pathlib import Path

import asyncpg
import httpx
import pytest
from alembic import command as alembic_command
from sqlalchemy import text
from sqlalchemy.engine import make_url

from services.catalog import queries
from services.catalog.app import MIGRATIONS
from shared import migrate
from shared.db import create_engine
from tests.support import infra

DEMO = (
    Path(__file__).resolve().parents[2]
    / "services/catalog/demo/cambodia_upr2_2014_recommendations.csv"
)


async def import_demo(client: httpx.AsyncClient, admin: dict[str, str]) -> dict:
    response = await client.post(
        "/v1/imports",
        params={"format": "positions-csv", "atomic": "true"},
        content=DEMO.read_bytes(),
        headers={**admin, "Content-Type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    return response.json()


async def editor_key(client: httpx.AsyncClient, admin: dict[str, str]) -> dict[str, str]:
    response = await client.post(
        "/v1/keys", json={"name": "NGO editor", "role": "editor"}, headers=admin
    )
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['key']}"}


async def test_cambodia_imports_to_205_recommendations_once(catalog, admin, events) -> None:
    await events.start()
    report = await import_demo(catalog, admin)
    assert (report["created"], report["updated"], report["unchanged"]) == (205, 0, 0)
    assert report["rejected"] == []

    facets = (await catalog.get("/v1/recommendations/facets")).json()
    assert facets["total"] == 205
    assert facets["facets"]["response"] == {"supported": 163, "noted": 42}
    assert len(facets["facets"]["recommending_state"]) == 72

    created = await events.wait_for(205, type="upr.catalog.recommendation.created")
    assert len({e["subject"] for e in created}) == 205

    again = await import_demo(catalog, admin)
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 205)
    assert (await catalog.get("/v1/recommendations", params={"limit": 1})).json()["total"] == 205
    stored = await catalog.get(f"/v1/imports/{again['id']}")
    assert stored.json()["unchanged"] == 205


async def test_a_recommendation_keeps_its_response_history(catalog, admin) -> None:
    await import_demo(catalog, admin)
    rec = (await catalog.get("/v1/recommendations/KHM-2-118.1")).json()
    assert rec["recommending_states"] == [{"iso3": "FRA", "name": "France"}]
    assert [r["position"] for r in rec["response_history"]] == ["supported", "noted"]
    assert rec["response"]["position"] == "noted"
    assert rec["state_under_review"]["iso3"] == "KHM"
    assert rec["document"] == "A/HRC/26/16"

    belgium = (await catalog.get("/v1/recommendations/KHM-2-118.17")).json()
    assert belgium["recommending_states"][0]["iso3"] == "BEL"
    missing = await catalog.get("/v1/recommendations/KHM-2-999.1")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


async def test_filters_search_and_cursor_pages(catalog, admin) -> None:
    await import_demo(catalog, admin)
    noted = (await catalog.get("/v1/recommendations", params={"response": "noted"})).json()
    assert noted["total"] == 42
    accepted = await catalog.get("/v1/recommendations", params={"response": "accepted"})
    assert accepted.json()["total"] == 163

    death = await catalog.get(
        "/v1/recommendations",
        params={"issue": "death penalty", "recommending_state": "France"},
    )
    body = death.json()
    assert body["total"] >= 1
    assert all("Death penalty" in item["issues"] for item in body["items"])
    assert all(item["recommending_states"][0]["iso3"] == "FRA" for item in body["items"])

    search = (await catalog.get("/v1/recommendations", params={"q": "standing invitation"})).json()
    numbers = {item["number"] for item in search["items"]}
    assert {"119.13", "119.14", "119.15"} <= numbers

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 37, "sort": "number"}
        if cursor:
            params["cursor"] = cursor
        page = (await catalog.get("/v1/recommendations", params=params)).json()
        seen.extend(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 205 == len(set(seen))
    assert seen.index("KHM-2-118.9") < seen.index("KHM-2-118.10")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"issue": "Astrology"}, "query.issue"),
        ({"recommending_state": "Atlantis"}, "query.recommending_state"),
        ({"response": "maybe"}, "query.response"),
        ({"colour": "blue"}, "query.colour"),
        ({"action_category": "9"}, "query.action_category.0"),
        ({"cursor": "not-a-cursor"}, "query.cursor"),
        ({"responsible_body": "Ministry of Magic"}, "query.responsible_body"),
    ],
)
async def test_bad_filters_are_422_naming_the_field(catalog, params, field) -> None:
    response = await catalog.get("/v1/recommendations", params=params)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in response.json()["errors"]]


async def test_writes_need_a_key_with_the_right_role(catalog, admin) -> None:
    payload = {
        "state_under_review": "KHM",
        "cycle": 3,
        "number": "110.1",
        "text": "Establish an independent national human rights institution",
        "recommending_states": ["Belgium"],
    }
    assert (await catalog.post("/v1/recommendations", json=payload)).status_code == 401
    bad = await catalog.post(
        "/v1/recommendations", json=payload, headers={"Authorization": "Bearer nope"}
    )
    assert bad.status_code == 401
    editor = await editor_key(catalog, admin)
    assert (await catalog.get("/v1/keys", headers=editor)).status_code == 403
    assert (
        await catalog.post("/v1/recommendations", json=payload, headers=editor)
    ).status_code == 201
    assert (await catalog.get("/v1/recommendations", params={"cycle": 3})).json()["total"] == 1


async def test_every_write_emits_its_event_with_the_full_state(catalog, admin, events) -> None:
    await events.start()
    editor = await editor_key(catalog, admin)
    created = await catalog.post(
        "/v1/recommendations",
        json={
            "state_under_review": "Cambodia",
            "cycle": 3,
            "number": "110.17",
            "text": "Adopt a law on access to information",
            "recommending_states": ["BEL", "Sweden"],
            "issues": ["freedom of opinion and expression"],
            "responses": [{"position": "pending", "source": "A/HRC/41/17"}],
        },
        headers=editor,
    )
    assert created.status_code == 201, created.text
    rec = created.json()
    assert rec["id"] == "KHM-3-110.17"
    assert rec["action_category"] == 5 and rec["action_category_suggested"] is True
    rid = rec["id"]

    patched = await catalog.patch(
        f"/v1/recommendations/{rid}", json={"action_category": 4, "sdg_goals": [16]}, headers=editor
    )
    assert patched.status_code == 200 and patched.json()["action_category_suggested"] is False
    responded = await catalog.post(
        f"/v1/recommendations/{rid}/responses",
        json={"position": "supported", "declared_label": "accepted", "date": "2019-07-11"},
        headers=editor,
    )
    assert responded.status_code == 201 and responded.json()["response"]["position"] == "supported"
    assigned = await catalog.put(
        f"/v1/recommendations/{rid}/responsible-bodies",
        json={"responsible_bodies": [{"name": "Ministry of Information", "role": "lead"}]},
        headers=editor,
    )
    assert assigned.status_code == 200
    prioritised = await catalog.put(
        f"/v1/recommendations/{rid}/priorities",
        json={"term": "short", "set_by": "CHRAC coalition", "note": "before the elections"},
        headers=editor,
    )
    assert prioritised.status_code == 200

    kinds = ["created", "updated", "response_changed", "assigned", "prioritised"]
    for kind in kinds:
        [event] = await events.wait_for(1, type=f"upr.catalog.recommendation.{kind}")
        assert event["subject"] == rid
        assert event["specversion"] == "1.0"
        assert event["data"]["recommendation"]["id"] == rid
    last = (await events.wait_for(1, type="upr.catalog.recommendation.prioritised"))[0]
    state = last["data"]["recommendation"]
    assert state["version"] == 5
    assert state["responsible_bodies"] == [{"name": "Ministry of Information", "role": "lead"}]
    assert state["priorities"][0]["set_by"] == "CHRAC coalition"
    assert [c["iso3"] for c in state["recommending_states"]] == ["BEL", "SWE"]
    updated = (await events.wait_for(1, type="upr.catalog.recommendation.updated"))[0]
    assert sorted(updated["data"]["changed_fields"]) == ["action_category", "sdg_goals"]

    by_body = await catalog.get(
        "/v1/recommendations", params={"responsible_body": "Ministry of Information"}
    )
    assert by_body.json()["total"] == 1
    by_priority = await catalog.get("/v1/recommendations", params={"priority": "short"})
    assert by_priority.json()["total"] == 1


async def test_bad_writes_are_4xx_and_write_nothing(catalog, admin, events) -> None:
    await events.start()
    editor = await editor_key(catalog, admin)
    cases = [
        ({"state_under_review": "KHM", "cycle": 2, "number": "1.1", "text": "Do it",
          "recommending_states": ["Atlantis"]}, "body.recommending_states.0"),
        ({"state_under_review": "KHM", "cycle": 2, "number": "1.1", "text": "Do it please",
          "recommending_states": ["BEL"], "issues": ["Astrology"]}, "body.issues.0"),
        ({"state_under_review": "KHM", "cycle": 2, "number": "1.1", "text": "Do it please",
          "recommending_states": ["BEL"], "colour": "red"}, "body.colour"),
    ]  # fmt: skip
    for payload, field in cases:
        response = await catalog.post("/v1/recommendations", json=payload, headers=editor)
        assert response.status_code == 422, response.text
        assert field in [e["field"] for e in response.json()["errors"]]
    good = {
        "state_under_review": "KHM",
        "cycle": 2,
        "number": "1.1",
        "text": "Do it please",
        "recommending_states": ["BEL"],
    }
    assert (await catalog.post("/v1/recommendations", json=good, headers=editor)).status_code == 201
    again = await catalog.post("/v1/recommendations", json=good, headers=editor)
    assert again.status_code == 409
    await events.wait_for(1)
    assert len(events.events) == 1
    assert (await catalog.get("/v1/recommendations")).json()["total"] == 1


async def test_bad_files_are_rejected_and_write_nothing(catalog, admin) -> None:
    async def post(content: bytes, **params: str) -> httpx.Response:
        return await catalog.post("/v1/imports", params=params, content=content, headers=admin)

    missing_columns = await post(b"SuR,Recommendation\nCambodia,Do it\n", format="upr-info-csv")
    assert missing_columns.status_code == 422
    assert "RS" in missing_columns.json()["detail"]
    latin1 = await post("SuR;Recommendation\nCôte".encode("latin-1"), format="upr-info-csv")
    assert latin1.status_code == 422
    empty = await post(b"", format="csv")
    assert empty.status_code == 422
    unknown_format = await post(b"a,b\n", format="excel")
    assert unknown_format.status_code == 422

    rows = DEMO.read_text(encoding="utf-8").splitlines()
    broken = [*rows[:1], rows[1].replace(",France,FRA,", ",Atlantis,ATL,"), *rows[2:8]]
    atomic = await post("\n".join(broken).encode(), format="positions-csv", atomic="true")
    assert atomic.status_code == 422
    report = atomic.json()["report"]
    assert report["committed"] is False and report["rejected"][0]["line"] == 2
    assert (await catalog.get("/v1/recommendations")).json()["total"] == 0

    partial = await post("\n".join(broken).encode(), format="positions-csv")
    assert partial.status_code == 200
    assert partial.json()["created"] == 6 and len(partial.json()["rejected"]) == 1

    too_big = await catalog.post(
        "/v1/imports",
        params={"format": "csv"},
        content=b"x" * (catalog_max_body(catalog) + 1),
        headers=admin,
    )
    assert too_big.status_code == 413


def catalog_max_body(client: httpx.AsyncClient) -> int:
    return client._transport.app.state.settings.max_body_bytes  # type: ignore[attr-defined]


async def test_utf16_and_bom_uploads_import(catalog, admin) -> None:
    text = DEMO.read_text(encoding="utf-8")
    for encoded in (text.encode("utf-16"), b"\xef\xbb\xbf" + text.encode()):
        response = await catalog.post(
            "/v1/imports", params={"format": "positions-csv"}, content=encoded, headers=admin
        )
        assert response.status_code == 200, response.text
    assert (await catalog.get("/v1/recommendations")).json()["total"] == 205


async def test_similar_finds_the_standing_invitation_cluster(catalog, admin) -> None:
    await import_demo(catalog, admin)
    similar = (await catalog.get("/v1/recommendations/KHM-2-119.13/similar")).json()
    ids = [s["id"] for s in similar]
    assert "KHM-2-119.14" in ids[:3] and "KHM-2-119.15" in ids[:3]
    assert all(0 < s["similarity"] <= 1 for s in similar)


async def test_export_round_trips_through_import(catalog, admin) -> None:
    await import_demo(catalog, admin)
    editor = await editor_key(catalog, admin)
    await catalog.put(
        "/v1/recommendations/KHM-2-118.17/responsible-bodies",
        json={"responsible_bodies": [{"name": "Ministry of Information", "role": "lead"}]},
        headers=editor,
    )
    exported_csv = await catalog.get("/v1/recommendations/export", params={"format": "csv"})
    assert exported_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported_csv.text)))
    assert len(rows) == 205
    for fmt, content in (
        ("csv", exported_csv.content),
        ("json", (await catalog.get("/v1/recommendations/export?format=json")).content),
        ("json", (await catalog.get("/v1/recommendations/export?format=ndjson")).content),
    ):
        report = (
            await catalog.post(
                "/v1/imports", params={"format": fmt}, content=content, headers=admin
            )
        ).json()
        assert (report["created"], report["updated"], report["unchanged"]) == (0, 0, 205), fmt
    assert (
        len(json.loads((await catalog.get("/v1/recommendations/export?format=json")).text)) == 205
    )
    noted = await catalog.get(
        "/v1/recommendations/export", params={"format": "ndjson", "response": "noted"}
    )
    assert len(noted.text.splitlines()) == 42


async def test_exported_csv_defuses_formulas(catalog, admin) -> None:
    editor = await editor_key(catalog, admin)
    await catalog.post(
        "/v1/recommendations",
        json={
            "state_under_review": "KHM",
            "cycle": 2,
            "number": "1.1",
            "text": '=HYPERLINK("http://evil") ratify the convention',
            "recommending_states": ["BEL"],
        },
        headers=editor,
    )
    exported = (await catalog.get("/v1/recommendations/export?format=csv")).text
    [row] = list(csv.DictReader(io.StringIO(exported)))
    assert row["text"].startswith("'=")
    report = (
        await catalog.post(
            "/v1/imports", params={"format": "csv"}, content=exported.encode(), headers=admin
        )
    ).json()
    assert report["unchanged"] == 1


async def test_health_and_readiness(catalog) -> None:
    assert (await catalog.get("/healthz")).json() == {"status": "ok"}
    ready = await catalog.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "nats": "ok"}
    assert "x-request-id" in ready.headers


async def test_openapi_documents_problems(catalog) -> None:
    schema = (await catalog.get("/openapi.json")).json()
    post = schema["paths"]["/v1/recommendations"]["post"]["responses"]
    assert {"401", "403", "409", "422"} <= set(post)
    assert "Problem" in schema["components"]["schemas"]


async def test_every_write_route_needs_a_key(catalog) -> None:
    schema = (await catalog.get("/openapi.json")).json()
    walked = 0
    for path, methods in schema["paths"].items():
        for method in methods:
            if method in {"post", "put", "patch", "delete"}:
                url = path.replace("{recommendation_id}", "KHM-2-118.17").replace("{key_id}", "x")
                response = await catalog.request(method.upper(), url, json={})
                assert response.status_code == 401, (method, path, response.status_code)
                walked += 1
    assert walked >= 8


async def test_clusters_group_near_duplicates(catalog, admin, events) -> None:
    await import_demo(catalog, admin)
    await events.start()
    response = await catalog.post(
        "/v1/clusters/recompute", params={"state_under_review": "KHM"}, headers=admin
    )
    assert response.status_code == 200, response.text
    assert response.json()["changed"] >= 3
    rec = (await catalog.get("/v1/recommendations/KHM-2-119.14")).json()
    assert rec["cluster_id"] is not None
    members = (
        await catalog.get("/v1/recommendations", params={"cluster": rec["cluster_id"]})
    ).json()
    assert {"119.13", "119.14", "119.15"} <= {i["number"] for i in members["items"]}
    await events.wait_for(response.json()["changed"], type="upr.catalog.recommendation.updated")
    again = await catalog.post(
        "/v1/clusters/recompute", params={"state_under_review": "KHM"}, headers=admin
    )
    assert again.json()["changed"] == 0


async def test_metrics_name_routes_not_ids(catalog, admin) -> None:
    await import_demo(catalog, admin)
    await catalog.get("/v1/recommendations/KHM-2-118.17")
    text = (await catalog.get("/metrics")).text
    assert 'route="/v1/recommendations/{recommendation_id}"' in text
    assert "KHM-2-118.17" not in text
    assert 'upr_outbox_backlog{service="catalog"}' in text
    assert "upr_events_published_total" in text


async def test_a_reimport_with_changes_updates_and_announces(catalog, admin, events) -> None:
    await import_demo(catalog, admin)
    editor = await editor_key(catalog, admin)
    await catalog.patch(
        "/v1/recommendations/KHM-2-118.20", json={"sdg_goals": [16]}, headers=editor
    )
    await events.start()
    await events.wait_for(205, type="upr.catalog.recommendation.created")
    rows = list(csv.reader(io.StringIO(DEMO.read_text(encoding="utf-8"))))
    header = rows[0]
    text, final = header.index("text"), header.index("final_response")
    for row in rows[1:]:
        if row[header.index("recommendation_id")] == "118.10":
            row[text] = row[text] + " without delay"
        if row[header.index("recommendation_id")] == "118.20":
            row[final] = "noted"
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    response = await catalog.post(
        "/v1/imports",
        params={"format": "positions-csv"},
        content=buffer.getvalue().encode(),
        headers=admin,
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["created"], report["updated"], report["unchanged"]) == (0, 2, 203)
    [updated] = await events.wait_for(
        1, type="upr.catalog.recommendation.updated", subject="KHM-2-118.10"
    )
    assert updated["data"]["changed_fields"] == ["text"]
    [changed] = await events.wait_for(
        1, type="upr.catalog.recommendation.response_changed", subject="KHM-2-118.20"
    )
    assert changed["data"]["previous"]["position"] == "supported"
    assert changed["data"]["recommendation"]["response"]["position"] == "noted"
    kept = (await catalog.get("/v1/recommendations/KHM-2-118.20")).json()
    assert kept["sdg_goals"] == [16]


async def test_patch_guards_identity_and_nulls(catalog, admin) -> None:
    legacy = (
        "SuR,Recommendation,RS,Response,ActionCategory,Issue,Cycle\n"
        "Cambodia,Ratify the convention against torture,France,Accepted,5,"
        "Torture and other CID treatment,1\n"
    )
    report = (
        await catalog.post(
            "/v1/imports", params={"format": "upr-info-csv"}, content=legacy.encode(), headers=admin
        )
    ).json()
    assert report["created"] == 1
    [item] = (await catalog.get("/v1/recommendations")).json()["items"]
    assert item["id"].startswith("KHM-1-h")
    renamed = await catalog.patch(
        f"/v1/recommendations/{item['id']}", json={"text": "Something else"}, headers=admin
    )
    assert renamed.status_code == 422
    nulls = await catalog.patch(
        f"/v1/recommendations/{item['id']}", json={"issues": None, "sdg_goals": None}, headers=admin
    )
    assert nulls.status_code == 200 and nulls.json()["issues"] == []
    emptied = await catalog.patch(
        f"/v1/recommendations/{item['id']}", json={"recommending_states": None}, headers=admin
    )
    assert emptied.status_code == 422


async def test_the_list_total_is_exact_up_to_a_cap(catalog, admin, monkeypatch) -> None:
    await import_demo(catalog, admin)

    async def page(**params: str | int) -> dict:
        response = await catalog.get("/v1/recommendations", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    one_page = await page(response="noted")  # every match on the first page: no count
    assert (one_page["total"], one_page["total_exact"], one_page["next_cursor"]) == (42, True, None)
    counted = await page(response="noted", limit=10)
    assert (counted["total"], counted["total_exact"]) == (42, True)

    monkeypatch.setattr(queries, "TOTAL_CAP", 100)
    capped = await page(limit=10)
    assert (capped["total"], capped["total_exact"]) == (100, False)
    later = await page(limit=10, cursor=capped["next_cursor"])
    assert (later["total"], later["total_exact"]) == (100, False)
    assert len(later["items"]) == 10
    exact = await page(limit=10, exact_total="true")
    assert (exact["total"], exact["total_exact"]) == (205, True)
    assert (await page(response="noted", limit=10))["total_exact"] is True
    assert (await page(response="noted", limit=10, exact_total="true"))["total"] == 42

    bad = await catalog.get("/v1/recommendations", params={"exact_total": "maybe"})
    assert bad.status_code == 422
    schema = (await catalog.get("/openapi.json")).json()["components"]["schemas"]
    assert {"items", "total", "total_exact", "next_cursor"} <= set(
        schema["RecommendationPage"]["required"]
    )


async def all_ids(client: httpx.AsyncClient, params: dict) -> set[str]:
    ids: set[str] = set()
    cursor = None
    while True:
        page_params = {**params, "limit": 500, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/recommendations", params=page_params)).json()
        ids.update(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


async def test_issue_and_state_filters_or_their_values(catalog, admin) -> None:
    await import_demo(catalog, admin)
    for name, first, second in (
        ("issue", "Death penalty", "Women's rights"),
        ("recommending_state", "France", "BEL"),
    ):
        one = await all_ids(catalog, {name: first})
        other = await all_ids(catalog, {name: second})
        both = await all_ids(catalog, {name: [first, second]})
        assert one and other and one != other
        assert both == one | other
        facets = (await catalog.get("/v1/recommendations/facets", params={name: first})).json()
        assert facets["total"] == len(one)
    combined = await all_ids(catalog, {"issue": "Death penalty", "q": "optional protocol"})
    assert combined and combined <= await all_ids(catalog, {"issue": "Death penalty"})


async def test_search_follows_a_changed_text(catalog, admin) -> None:
    await import_demo(catalog, admin)
    editor = await editor_key(catalog, admin)
    assert (await catalog.get("/v1/recommendations", params={"q": "zebras"})).json()["total"] == 0
    patched = await catalog.patch(
        "/v1/recommendations/KHM-2-118.17",
        json={"text": "Protect the zebras of the national parks"},
        headers=editor,
    )
    assert patched.status_code == 200, patched.text
    found = (await catalog.get("/v1/recommendations", params={"q": "zebra"})).json()
    assert [item["id"] for item in found["items"]] == ["KHM-2-118.17"]


async def test_search_indexes_migrate_up_and_down(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    config = migrate.alembic_config(MIGRATIONS)

    async def indexes() -> set[str]:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT indexname FROM pg_indexes WHERE tablename = 'recommendations'")
            )
            return {row[0] for row in rows}

    async def has_tsv_column() -> bool:
        async with engine.connect() as conn:
            generated = await conn.scalar(
                text(
                    "SELECT is_generated FROM information_schema.columns "
                    "WHERE table_name = 'recommendations' AND column_name = 'text_tsv'"
                )
            )
            return generated == "ALWAYS"

    async def run(command_: Callable[..., None], revision: str) -> None:
        def go(connection) -> None:
            config.attributes["connection"] = connection
            command_(config, revision)

        async with engine.begin() as conn:
            await conn.run_sync(go)

    per_column = {
        "ix_recommendations_text_tsv",
        "ix_recommendations_issues_gin",
        "ix_recommendations_recommending_states_gin",
    }

    async def search_index() -> str | None:
        async with engine.connect() as conn:
            return await conn.scalar(
                text(
                    "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_recommendations_search'"
                )
            )

    try:
        await migrate.upgrade(engine, MIGRATIONS)
        # Head: one GIN index over the vector and the filters (btree_gin is available here).
        definition = await search_index()
        assert definition is not None and "gin (text_tsv, issues jsonb_path_ops" in definition
        assert "response_position, state_under_review" in definition
        assert not per_column & await indexes() and await has_tsv_column()
        await run(alembic_command.downgrade, "0004")
        assert per_column <= await indexes() and await search_index() is None
        await run(alembic_command.downgrade, "0001")
        assert not per_column & await indexes() and "ix_recommendations_fts" in await indexes()
        assert not await has_tsv_column()
        await run(alembic_command.upgrade, "head")
        assert await search_index() is not None and await has_tsv_column()
    finally:
        await engine.dispose()


async def test_search_index_without_btree_gin_covers_the_other_columns(
    postgres_admin_url: str,
) -> None:
    # A role that may create tables but not extensions (no CREATE on the database).
    role = f"upr_noext_{uuid.uuid4().hex[:8]}"
    name = await infra.create_database(postgres_admin_url)
    database_url = infra.with_database(postgres_admin_url, name)
    admin = await asyncpg.connect(postgres_admin_url)
    password = uuid.uuid4().hex
    await admin.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'")
    owner = await asyncpg.connect(database_url)
    await owner.execute(f'GRANT CREATE, USAGE ON SCHEMA public TO "{role}"')
    await owner.close()
    as_role = make_url(infra.async_url(database_url)).set(username=role, password=password)
    engine = create_engine(as_role.render_as_string(hide_password=False))
    try:
        await migrate.upgrade(engine, MIGRATIONS)
        async with engine.connect() as conn:
            definition = await conn.scalar(
                text(
                    "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_recommendations_search'"
                )
            )
            extension = await conn.scalar(
                text("SELECT count(*) FROM pg_extension WHERE extname = 'btree_gin'")
            )
        assert extension == 0
        assert definition is not None and "recommending_states jsonb_path_ops)" in definition
        assert "response_position" not in definition
    finally:
        await engine.dispose()
        await infra.drop_database(postgres_admin_url, name)
        await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        await admin.close()


async def test_catalog_connections_plan_for_each_call_and_imports_reuse_plans(
    catalog: httpx.AsyncClient, catalog_app
) -> None:
    async with catalog_app.state.session_factory() as session:
        assert (await session.scalar(text("SHOW plan_cache_mode"))) == "force_custom_plan"
        await queries.plan_generically(session)
        assert (await session.scalar(text("SHOW plan_cache_mode"))) == "auto"
        await session.rollback()  # SET LOCAL ends with the transaction
        assert (await session.scalar(text("SHOW plan_cache_mode"))) == "force_custom_plan"


async def test_facets_of_a_filter_agree_with_the_list(catalog, admin) -> None:
    await import_demo(catalog, admin)
    noted = await all_ids(catalog, {"response": "noted"})
    some = sorted(noted)[:3]
    for rec_id in some:
        assigned = await catalog.put(
            f"/v1/recommendations/{rec_id}/responsible-bodies",
            json={"responsible_bodies": [{"name": "Ministry of Justice", "role": "lead"}]},
            headers=admin,
        )
        assert assigned.status_code == 200, assigned.text
    # Two groups give the same recommendation the same term: it still counts once.
    for group in ("CHRAC coalition", "Women's caucus"):
        prioritised = await catalog.put(
            f"/v1/recommendations/{some[0]}/priorities",
            json={"term": "short", "set_by": group},
            headers=admin,
        )
        assert prioritised.status_code == 200, prioritised.text

    body = (await catalog.get("/v1/recommendations/facets", params={"response": "noted"})).json()
    assert body["total"] == len(noted) == 42
    facets = body["facets"]
    assert facets["response"] == {"noted": 42}
    assert facets["responsible_body"] == {"Ministry of Justice": 3}
    assert facets["priority"] == {"short": 1}
    counts = list(facets["issue"].values())
    assert counts == sorted(counts, reverse=True)  # most first
    param = {"state_under_review": "state_under_review", "recommending_state": "recommending_state"}
    for facet in ("issue", "recommending_state", "state_under_review", "action_category"):
        for value, count in list(facets[facet].items())[:4]:
            ids = await all_ids(catalog, {"response": "noted", param.get(facet, facet): value})
            assert count == len(ids), (facet, value)
