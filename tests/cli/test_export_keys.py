"""`upr export` and `upr keys list|revoke` on a real PostgreSQL database."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from shared.audit import AuditEntry
from shared.db import create_engine
from tests.cli.conftest import Invoke

DEMO = (
    Path(__file__).resolve().parents[2]
    / "services/catalog/demo/cambodia_upr2_2014_recommendations.csv"
)


@pytest.fixture
async def catalog(make_database, monkeypatch: pytest.MonkeyPatch, upr: Invoke) -> str:
    url = await make_database()
    monkeypatch.setenv("UPR_CATALOG_DATABASE_URL", url)
    monkeypatch.setenv("UPR_ENVIRONMENT", "test")
    assert (await upr("migrate", "catalog")).exit_code == 0
    return url


async def test_export_with_filters_in_each_format(
    catalog: str, upr: Invoke, tmp_path: Path
) -> None:
    imported = await upr("import", str(DEMO), "--format", "positions-csv")
    assert imported.exit_code == 0, imported.output

    noted = await upr("export", "--state-under-review", "Cambodia", "--response", "rejected")
    assert noted.exit_code == 0, noted.output
    rows = list(csv.DictReader(io.StringIO(noted.stdout)))
    assert len(rows) == 42 and {r["response"] for r in rows} == {"noted"}
    assert "exported 42 recommendation(s)" in noted.stderr

    target = tmp_path / "khm.json"
    saved = await upr("export", "-f", "json", "-o", str(target), "--cycle", "2")
    assert saved.exit_code == 0, saved.output
    records = json.loads(target.read_text(encoding="utf-8"))
    assert len(records) == 205 and records[0]["state_under_review"]["iso3"] == "KHM"
    assert not (tmp_path / "khm.json.partial").exists()

    ndjson = await upr("export", "-f", "ndjson", "--recommending-state", "BEL")
    lines = [json.loads(line) for line in ndjson.stdout.splitlines()]
    assert lines and all("BEL" in [s["iso3"] for s in x["recommending_states"]] for x in lines)

    # What the export writes, the import reads back unchanged.
    again = await upr("import", str(target), "--format", "json")
    assert "created 0, updated 0, unchanged 205" in again.stdout

    for bad in (["--response", "maybe"], ["--state-under-review", "Atlantis"], ["-f", "xlsx"]):
        refused = await upr("export", *bad)
        assert refused.exit_code == 2, bad
        assert refused.stderr.startswith("error: ")


async def test_keys_list_and_revoke(catalog: str, upr: Invoke) -> None:
    created = await upr("keys", "create", "--role", "editor", "--name", "LICADHO")
    plaintext = created.stdout.strip().splitlines()[-1]
    await upr("keys", "create", "--role", "admin", "--name", "CHRAC", "--organisation", "CHRAC")

    listed = await upr("keys", "list", "--json")
    assert listed.exit_code == 0, listed.output
    keys = json.loads(listed.stdout)
    assert [(k["name"], k["role"]) for k in keys] == [("LICADHO", "editor"), ("CHRAC", "admin")]
    assert plaintext not in listed.stdout and plaintext.startswith(keys[0]["prefix"])

    revoked = await upr("keys", "revoke", keys[0]["id"])
    assert revoked.exit_code == 0, revoked.output
    active = json.loads((await upr("keys", "list", "--json")).stdout)
    assert [k["name"] for k in active] == ["CHRAC"]
    everything = json.loads((await upr("keys", "list", "--revoked", "--json")).stdout)
    assert [k["revoked_at"] is not None for k in everything] == [True, False]
    people = await upr("keys", "list")
    assert "CHRAC (CHRAC)" in people.stdout and "active" in people.stdout

    twice = await upr("keys", "revoke", keys[0]["id"])
    assert twice.exit_code == 1 and "no active key" in twice.stderr
    unknown_service = await upr("keys", "list", "--service", "billing")
    assert unknown_service.exit_code == 2


async def test_command_line_writes_are_in_the_audit_log(catalog: str, upr: Invoke) -> None:
    created = await upr("keys", "create", "--role", "admin", "--name", "Jane Doe")
    assert created.exit_code == 0, created.output
    key_id = json.loads((await upr("keys", "list", "--json")).stdout)[0]["id"]
    assert (await upr("keys", "revoke", key_id)).exit_code == 0
    assert (await upr("keys", "revoke", key_id)).exit_code == 1  # nothing changed: no entry
    imported = await upr("import", str(DEMO), "--format", "positions-csv")
    assert imported.exit_code == 0, imported.output

    engine = create_engine(catalog)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(AuditEntry).order_by(AuditEntry.seq))).all()
    finally:
        await engine.dispose()
    assert [(r.method, r.path, r.role, r.key_id) for r in rows] == [
        ("CLI", "upr keys create", "operator", None),
        ("CLI", "upr keys revoke", "operator", None),
        ("CLI", "upr import", "operator", None),
    ]
    create, revoke, load = rows
    assert create.target == key_id and revoke.target == key_id
    assert create.changes["options"] == {"role": "admin", "name": "[redacted]"}
    assert create.changes["created"] == [f"api_keys:{key_id}"]
    assert "Jane Doe" not in json.dumps(create.changes)
    assert load.changes["options"]["created"] == 205 and load.changes["options"]["format"] == (
        "positions-csv"
    )
    assert all(r.changes["system_user"] for r in rows)


async def test_unreachable_database_is_a_plain_error(
    upr: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPR_CATALOG_DATABASE_URL", "postgresql+asyncpg://nobody@127.0.0.1:1/x")
    result = await upr("keys", "list")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and "Traceback" not in result.output
