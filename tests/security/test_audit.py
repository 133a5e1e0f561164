"""The audit log (OWASP API9/API10 accountability): who wrote what and when, PII masked."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx
import pytest
from alembic import command as alembic_command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from shared import migrate
from shared.db import PlumbingBase, create_engine
from tests.security.conftest import Stack

REC = "KHM-2-118.17"


async def _key(client: httpx.AsyncClient, admin: dict, role: str, org: str | None = None):
    response = await client.post(
        "/v1/keys", json={"name": f"{role} key", "role": role, "organisation": org}, headers=admin
    )
    assert response.status_code == 201
    body = response.json()
    return body["id"], {"Authorization": f"Bearer {body['key']}"}


async def _audit(client: httpx.AsyncClient, admin: dict, **params) -> dict:
    response = await client.get("/v1/audit", params=params, headers=admin)
    assert response.status_code == 200, response.text
    return response.json()


async def test_every_write_is_audited_with_who_when_and_what(stack: Stack) -> None:
    started = dt.datetime.now(dt.UTC)
    editor_id, editor = await _key(stack.catalog, stack.admin, "editor")
    body = {
        "state_under_review": "KHM",
        "cycle": 2,
        "number": "1.1",
        "text": "Ratify the convention",
        "recommending_states": ["BEL"],
    }
    created = await stack.catalog.post("/v1/recommendations", json=body, headers=editor)
    assert created.status_code == 201
    rec_id = created.json()["id"]
    patched = await stack.catalog.patch(
        f"/v1/recommendations/{rec_id}", json={"text": "Ratify the convention soon"},
        headers=editor,
    )  # fmt: skip
    assert patched.status_code == 200
    refused = await stack.catalog.post("/v1/recommendations", json={"cycle": 99}, headers=editor)
    assert refused.status_code == 422

    page = await _audit(stack.catalog, stack.admin, key_id=editor_id)
    patch_entry, create_entry = page["items"]  # newest first; the refused write left nothing
    assert create_entry["method"] == "POST" and create_entry["path"] == "/v1/recommendations"
    assert create_entry["role"] == "editor" and create_entry["key_id"] == editor_id
    assert create_entry["changes"]["body"]["text"] == "Ratify the convention"
    assert f"recommendations:{rec_id}" in create_entry["changes"]["created"]
    assert started <= dt.datetime.fromisoformat(create_entry["at"]) <= dt.datetime.now(dt.UTC)
    assert patch_entry["method"] == "PATCH" and patch_entry["target"] == rec_id
    updated = patch_entry["changes"]["updated"][f"recommendations:{rec_id}"]
    assert updated["text"] == "Ratify the convention soon"
    assert create_entry["request_id"] and create_entry["request_id"] != patch_entry["request_id"]

    # The key's own creation is in the log, by the bootstrap admin.
    everything = await _audit(stack.catalog, stack.admin)
    assert [e["key_id"] for e in everything["items"]] == ["bootstrap", editor_id, editor_id][::-1]
    first, *_ = await _paged(stack.catalog, stack.admin)
    assert first["path"] == "/v1/keys"
    later = await _audit(
        stack.catalog, stack.admin, since=create_entry["at"], until=patch_entry["at"]
    )
    assert [e["seq"] for e in later["items"]] == [create_entry["seq"]]
    naive = await stack.catalog.get(
        "/v1/audit", params={"since": "2026-01-01T00:00:00"}, headers=stack.admin
    )
    assert naive.status_code == 422 and naive.json()["errors"][0]["field"] == "query.since"


async def _paged(client: httpx.AsyncClient, admin: dict) -> list[dict]:
    """Every entry, oldest first, one per page."""
    entries, before = [], None
    while True:
        params = {"limit": 1, **({"before": before} if before else {})}
        page = await _audit(client, admin, **params)
        entries.extend(page["items"])
        before = page["next_before"]
        if before is None:
            return entries[::-1]


async def test_personal_data_never_reaches_the_audit_log(stack: Stack) -> None:
    secrets_ = ["focal@justice.gov.kh", "+85512345678", "new.focal@justice.gov.kh", "reader@x.org"]
    recipient = await stack.recipient(
        name="Sok Dara",
        kind="ministry",
        organisation="Ministry of Justice",
        email=secrets_[0],
        phone=secrets_[1],
        webhook_url="https://hooks.example.org/secret-path",
        webhook_secret="whsec_do-not-log-this-secret",
    )
    changed = await stack.notifications.patch(
        f"/v1/recipients/{recipient['id']}", json={"email": secrets_[2]}, headers=stack.admin
    )
    assert changed.status_code == 200
    subscribed = await stack.notifications.post("/v1/subscribe", json={"email": secrets_[3]})
    assert subscribed.status_code == 202

    page = await _audit(stack.notifications, stack.admin)
    text = str(page)
    for value in [*secrets_, "Sok Dara", "secret-path", "do-not-log-this-secret", "85512345678"]:
        assert value not in text, value
    subscribe, patch, create = page["items"]
    assert subscribe["role"] == "anonymous" and subscribe["key_id"] is None
    assert subscribe["changes"]["body"]["email"] == "[redacted]"
    assert create["changes"]["body"]["kind"] == "ministry"  # what is not personal stays
    assert create["changes"]["body"]["organisation"] == "Ministry of Justice"
    assert patch["changes"]["updated"][f"recipients:{recipient['id']}"]["email"] == "[redacted]"


async def test_monitoring_writes_name_the_organisation_key(stack: Stack) -> None:
    await stack.import_demo()
    key_id, adhoc = await _key(stack.monitoring, stack.admin, "assessor", "ADHOC")
    await stack.assess(adhoc, REC, "in_progress", summary="Draft law tabled")
    [entry] = (await _audit(stack.monitoring, stack.admin, key_id=key_id))["items"]
    assert entry["role"] == "assessor" and entry["target"] == REC
    assert entry["changes"]["body"]["status"] == "in_progress"
    assert any(row.startswith("assessments:") for row in entry["changes"]["created"])
    upload = await stack.monitoring.post(
        f"/v1/recommendations/{REC}/evidence/upload",
        data={"kind": "ngo_report", "title": "Report", "submitter_name": "A. Researcher"},
        files={"file": ("r.pdf", b"%PDF-1.4 report", "application/pdf")},
        headers=adhoc,
    )
    assert upload.status_code == 201
    latest = (await _audit(stack.monitoring, stack.admin, key_id=key_id))["items"][0]
    assert latest["changes"]["body"]["file"] == {
        "file": "r.pdf",
        "type": "application/pdf",
        "bytes": 15,
    }
    assert latest["changes"]["body"]["submitter_name"] == "[redacted]"
    assert "A. Researcher" not in str(latest)


@pytest.mark.parametrize(
    ("service", "previous"),
    [("catalog", "0002"), ("monitoring", "0002"), ("notifications", "0001")],
)
async def test_the_audit_migration_matches_the_table_and_goes_down_and_up(
    postgres_url: str, service: str, previous: str
) -> None:
    migrations = Path(__file__).resolve().parents[2] / "services" / service / "migrations"
    engine = create_engine(postgres_url)
    config = migrate.alembic_config(migrations)

    async def run(command_, revision: str) -> None:
        def go(connection) -> None:
            config.attributes["connection"] = connection
            command_(config, revision)

        async with engine.begin() as conn:
            await conn.run_sync(go)

    async def tables() -> set[str]:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))

    def audit_diff(connection) -> list:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return [
            d for d in compare_metadata(context, PlumbingBase.metadata) if "audit_log" in str(d)
        ]

    try:
        await migrate.upgrade(engine, migrations)
        assert "audit_log" in await tables()
        async with engine.connect() as conn:
            assert await conn.run_sync(audit_diff) == []
        await run(alembic_command.downgrade, previous)
        assert "audit_log" not in await tables()
        await run(alembic_command.upgrade, "head")
        assert "audit_log" in await tables()
    finally:
        await engine.dispose()


def test_masking_keeps_data_and_hides_people() -> None:
    from shared.audit import mask

    body = {
        "summary": "Met Sok at +855 12 345 678 (or 012 345 678, sok@example.org) on 2026-11-28",
        "assessed_on": "2026-11-28",
        "amount": 1_000_000,
        "confirmation_code": "123456",
        "webhook_secret": "whsec_abc",
        "filters": {"recommendation_ids": ["KHM-2-118.17"], "email": "x@example.org"},
        "text": "x" * 500,
        "items": list(range(60)),
    }
    masked = mask(body)
    assert masked["summary"] == "Met Sok at [phone] (or [phone], [email]) on 2026-11-28"
    assert masked["assessed_on"] == "2026-11-28" and masked["amount"] == 1_000_000
    assert masked["confirmation_code"] == masked["webhook_secret"] == "[redacted]"
    assert masked["filters"] == {"recommendation_ids": ["KHM-2-118.17"], "email": "[redacted]"}
    assert masked["text"].endswith("... (500 chars)") and len(masked["text"]) < 230
    assert len(masked["items"]) == 51 and masked["items"][-1] == "... 10 more"
    assert mask({"name": None, "email": ""}) == {"name": None, "email": ""}
