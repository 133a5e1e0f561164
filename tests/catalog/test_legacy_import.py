"""The 38,298-row UPR Info legacy file imports, is idempotent, and explains its rejections."""

from __future__ import annotations

from pathlib import Path

from services.catalog import formats, imports
from services.catalog.app import MIGRATIONS
from shared import migrate
from shared.db import create_engine, create_session_factory
from shared.outbox import outbox_backlog


async def test_legacy_file_imports_once(postgres_url: str, shared_data: Path) -> None:
    engine = create_engine(postgres_url)
    await migrate.upgrade(engine, MIGRATIONS)
    factory = create_session_factory(engine)
    text = formats.decode_upload((shared_data / "upr_info_legacy_2014.csv").read_bytes())
    try:
        async with factory() as session:
            report = await imports.run_import(
                session, list(formats.read_upr_info_csv(text)), fmt="upr-info-csv", atomic=False
            )
            await session.commit()
        unknown = [r for r in report.rejected if "'(Unknown)'" in r.reason]
        conflicting = [r for r in report.rejected if "with different content" in r.reason]
        assert len(unknown) + len(conflicting) == len(report.rejected)
        # The file lists one Australian recommendation twice with different issues.
        assert [r.line for r in conflicting] == [17912]
        assert report.created + report.unchanged + len(report.rejected) == 38_298
        assert report.unchanged == 3  # exact repeats inside the file
        async with factory() as session:
            backlog, _ = await outbox_backlog(session)
        assert backlog == report.created

        sample = list(formats.read_upr_info_csv(text))[:2_000]
        async with factory() as session:
            again = await imports.run_import(session, sample, fmt="upr-info-csv", atomic=False)
            await session.commit()
        assert again.created == 0 and again.updated == 0
        async with factory() as session:
            assert (await outbox_backlog(session))[0] == backlog
    finally:
        await engine.dispose()
