"""The `upr` command line on the embedded SQLite database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from cli.main import app
from services.catalog.models import Recommendation
from shared.auth import ApiKey, hash_key
from shared.db import create_engine, create_session_factory

DEMO = (
    Path(__file__).resolve().parents[2]
    / "services/catalog/demo/cambodia_upr2_2014_recommendations.csv"
)
runner = CliRunner()


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path}/catalog.db"
    monkeypatch.setenv("UPR_CATALOG_DATABASE_URL", url)
    monkeypatch.setenv("UPR_MONITORING_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/mon.db")
    monkeypatch.setenv("UPR_NOTIFICATIONS_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/not.db")
    monkeypatch.setenv("UPR_NOTIFICATIONS_SECRET_KEY", "cli-test-secret-0123456789")
    monkeypatch.setenv("UPR_SMS_GATEWAY_SECRET", "cli-test-sms-secret-0123456789")
    monkeypatch.setenv("UPR_ENVIRONMENT", "test")
    return url


def scalar(url: str, statement):
    async def run():
        engine = create_engine(url)
        try:
            async with create_session_factory(engine)() as session:
                return await session.scalar(statement)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_migrate_import_and_reimport(database: str, tmp_path: Path) -> None:
    migrated = runner.invoke(app, ["migrate"])
    assert migrated.exit_code == 0, migrated.output
    assert {"catalog: migrated", "monitoring: migrated", "notifications: migrated"} <= set(
        migrated.output.splitlines()
    )
    assert (tmp_path / "mon.db").exists() and (tmp_path / "not.db").exists()
    first = runner.invoke(app, ["import", str(DEMO), "--format", "positions-csv"])
    assert first.exit_code == 0, first.output
    assert "created 205, updated 0, unchanged 0, rejected 0" in first.output
    again = runner.invoke(app, ["import", str(DEMO), "--format", "positions-csv"])
    assert "created 0, updated 0, unchanged 205" in again.output
    assert scalar(database, select(func.count()).select_from(Recommendation)) == 205


def test_bad_invocations_exit_non_zero(database: str, tmp_path: Path) -> None:
    runner.invoke(app, ["migrate"])
    unknown = runner.invoke(app, ["import", str(DEMO), "--format", "excel"])
    assert unknown.exit_code == 2 and "unknown format" in unknown.output
    bad = tmp_path / "bad.csv"
    bad.write_text("SuR,Recommendation\nCambodia,Do it\n")
    unusable = runner.invoke(app, ["import", str(bad), "--format", "upr-info-csv"])
    assert unusable.exit_code == 1 and "missing" in unusable.output.lower()
    report = runner.invoke(app, ["import", str(DEMO), "--format", "report-text"])
    assert report.exit_code == 2


def test_keys_create_prints_a_key_stored_hashed(database: str) -> None:
    runner.invoke(app, ["migrate"])
    result = runner.invoke(app, ["keys", "create", "--role", "editor", "--name", "LICADHO"])
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    assert key.startswith("upr_")
    stored = scalar(database, select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
    assert stored is not None and stored.role == "editor"
    assert key not in (stored.key_hash, stored.prefix)
    wrong = runner.invoke(app, ["keys", "create", "--role", "king", "--name", "x"])
    assert wrong.exit_code == 2
