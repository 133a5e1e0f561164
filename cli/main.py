"""`upr`: the operator's command line (dev stack, migrations, imports, exports, keys)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cli import dlq, doctor, events, export, keys
from cli.nats_server import NatsServer, port_open

app = typer.Typer(help="UPR Tracker command line.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

SERVICES = {"catalog": 8001, "monitoring": 8002, "notifications": 8003}
WEB = {"web": 8000}  # the public pages: no database, so never migrated
DEV_NATS_PORT = 4250


@app.command()
def dev(
    data_dir: Annotated[
        Path,
        typer.Option(help="Where the SQLite databases, uploads, NATS data and the sinks go"),
    ] = Path("data"),
) -> None:
    """Start NATS (unless UPR_NATS_URL is set) and every service, on embedded defaults."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("UPR_ENVIRONMENT", "dev")
    env.setdefault("UPR_CATALOG_SEED_DEMO", "true")
    # Every embedded default under data_dir (a setting given in the environment wins).
    for name in SERVICES:
        env.setdefault(
            f"UPR_{name.upper()}_DATABASE_URL",
            f"sqlite+aiosqlite:///{(data_dir / f'{name}.db').resolve()}",
        )
    env.setdefault("UPR_MONITORING_UPLOAD_DIR", str((data_dir / "evidence").resolve()))
    nats = None
    if "UPR_NATS_URL" not in env:
        port = int(env.get("UPR_DEV_NATS_PORT", DEV_NATS_PORT))
        if port_open("127.0.0.1", port):
            typer.echo(f"a server already listens on {port}; using it as NATS")
        else:
            nats = NatsServer(
                store_dir=data_dir / "nats", port=port, log_file=data_dir / "nats.log"
            ).start()
            typer.echo(f"nats-server (JetStream) on nats://127.0.0.1:{port}")
        env["UPR_NATS_URL"] = f"nats://127.0.0.1:{port}"
    from cli.sinks import run_dev_sinks

    smtp_port = int(env.setdefault("UPR_SMTP_PORT", "2525"))
    sms_port = int(env.get("UPR_DEV_SMS_PORT", "8025"))
    env.setdefault("UPR_SMS_GATEWAY_URL", f"http://127.0.0.1:{sms_port}/sms")
    env.setdefault("UPR_SMTP_STARTTLS", "never")
    sinks = run_dev_sinks(
        data_dir,
        smtp_port=smtp_port,
        sms_port=sms_port,
        sms_secret=env.get("UPR_SMS_GATEWAY_SECRET", "dev-sms-secret"),
    )
    typer.echo(f"mail sink on 127.0.0.1:{smtp_port} -> {data_dir / 'mail'}")
    typer.echo(f"SMS sink on http://127.0.0.1:{sms_port}/sms -> {data_dir / 'sms'}")
    children: dict[str, subprocess.Popen[bytes]] = {}
    for name, port in {**SERVICES, **WEB}.items():
        env.setdefault(f"UPR_{name.upper()}_PORT", str(port))
        children[name] = subprocess.Popen([sys.executable, "-m", f"services.{name}"], env=env)
        docs = "" if name in WEB else " (docs at /docs)"
        typer.echo(f"{name} on http://127.0.0.1:{env[f'UPR_{name.upper()}_PORT']}{docs}")
    typer.echo("Ctrl-C stops everything.")
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    typer.echo(f"{name} exited with {child.returncode}; stopping", err=True)
                    stopping = True
            time.sleep(0.3)
    finally:
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children.values():
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
        for sink in sinks:
            sink.stop()
        if nats is not None:
            nats.stop()
        typer.echo("stopped")


def _service_database(name: str) -> tuple[str, Path]:
    """A service's database URL (from its settings) and migrations folder."""
    if name == "catalog":
        from services.catalog.app import MIGRATIONS
        from services.catalog.settings import CatalogSettings

        return CatalogSettings().database_url, MIGRATIONS
    if name == "monitoring":
        from services.monitoring.app import MIGRATIONS as MONITORING_MIGRATIONS
        from services.monitoring.settings import MonitoringSettings

        return MonitoringSettings().database_url, MONITORING_MIGRATIONS
    from services.notifications.app import MIGRATIONS as NOTIFICATIONS_MIGRATIONS
    from services.notifications.settings import NotificationsSettings

    return NotificationsSettings().database_url, NOTIFICATIONS_MIGRATIONS


@app.command()
def migrate(
    service: Annotated[list[str] | None, typer.Argument(help="Services to migrate (all)")] = None,
) -> None:
    """Apply the services' database migrations."""
    from shared import migrate as migrations
    from shared.db import create_engine

    for name in service or list(SERVICES):
        if name not in SERVICES:
            typer.echo(f"unknown service {name!r}; choose from {', '.join(SERVICES)}", err=True)
            raise typer.Exit(2)
        url, folder = _service_database(name)

        async def run(url: str = url, folder: Path = folder) -> None:
            engine = create_engine(url)
            try:
                await migrations.upgrade(engine, folder)
            finally:
                await engine.dispose()

        asyncio.run(run())
        typer.echo(f"{name}: migrated")


@app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    format: Annotated[
        str,
        typer.Option("--format", "-f", help="upr-info-csv, report-text, positions-csv, csv, json"),
    ],
    atomic: Annotated[bool, typer.Option(help="All-or-nothing")] = False,
    state_under_review: Annotated[
        str | None, typer.Option(help="report-text: ISO3 or name")
    ] = None,
    cycle: Annotated[int | None, typer.Option(help="report-text: UPR cycle")] = None,
    session: Annotated[int | None, typer.Option(help="report-text: HRC session")] = None,
    review_date: Annotated[str | None, typer.Option(help="report-text: YYYY-MM-DD")] = None,
    document: Annotated[
        str | None, typer.Option(help="report-text: symbol, e.g. A/HRC/26/16")
    ] = None,
) -> None:
    """Import recommendations into the catalog database (events go out through the outbox)."""
    from services.catalog import exports, formats, imports
    from services.catalog.countries import resolve_country
    from services.catalog.settings import CatalogSettings
    from shared import audit
    from shared.db import create_engine, create_session_factory

    text = formats.decode_upload(file.read_bytes())
    readers = {
        "upr-info-csv": lambda: formats.read_upr_info_csv(text),
        "positions-csv": lambda: formats.read_positions_csv(text),
        "csv": lambda: exports.read_csv(text),
        "json": lambda: exports.read_json(text),
        "report-text": lambda: formats.read_report_text(
            text,
            state_under_review=resolve_country(state_under_review or "").iso3,
            cycle=cycle or 0,
            session=session,
            review_date=date.fromisoformat(review_date) if review_date else None,
            document=document,
        ),
    }
    if format not in readers:
        typer.echo(f"unknown format {format!r}; use one of {', '.join(readers)}", err=True)
        raise typer.Exit(2)
    if format == "report-text" and (state_under_review is None or cycle is None):
        typer.echo("report-text needs --state-under-review and --cycle", err=True)
        raise typer.Exit(2)
    try:
        rows = list(readers[format]())
    except (formats.FormatError, ValueError) as exc:
        typer.echo(f"cannot import {file}: {exc}", err=True)
        raise typer.Exit(1) from exc

    async def run() -> imports.ImportReport:
        engine = create_engine(CatalogSettings().database_url)
        factory = create_session_factory(engine)
        try:
            with Progress(
                TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
            ) as bar:
                task = bar.add_task("import", total=len(rows))
                async with factory() as db:
                    audit.start_command(db)
                    report = await imports.run_import(
                        db,
                        rows,
                        fmt=format,
                        atomic=atomic,
                        filename=file.name,
                        progress=lambda n: bar.advance(task, n),
                    )
                    await audit.record_command(
                        db,
                        "upr import",
                        target=report.id,
                        options={
                            "file": file.name,
                            "format": format,
                            "atomic": atomic,
                            "created": report.created,
                            "updated": report.updated,
                            "unchanged": report.unchanged,
                            "rejected": len(report.rejected),
                        },
                    )
                    await db.commit()
                bar.update(task, completed=len(rows))
            return report
        finally:
            await engine.dispose()

    try:
        report = asyncio.run(run())
    except imports.ImportRejected as exc:
        typer.echo(json.dumps(exc.extra.get("report"), indent=2), err=True)
        typer.echo(f"rejected: {exc.detail}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(
        f"import {report.id}: created {report.created}, updated {report.updated}, "
        f"unchanged {report.unchanged}, rejected {len(report.rejected)}"
    )
    for rejection in report.rejected[:20]:
        typer.echo(f"  line {rejection.line}: {rejection.reason}")
    if len(report.rejected) > 20:
        typer.echo(f"  ... and {len(report.rejected) - 20} more")


@keys_app.command("create")
def create_key(
    role: Annotated[str, typer.Option(help="admin, editor or assessor")],
    name: Annotated[str, typer.Option(help="Who holds the key")],
    organisation: Annotated[str | None, typer.Option(help="The holder's organisation")] = None,
    organisation_type: Annotated[
        str | None,
        typer.Option(help="Its kind; on monitoring an assessor type (government, ngo, nhri...)"),
    ] = None,
    service: Annotated[str, typer.Option(help="catalog, monitoring or notifications")] = "catalog",
) -> None:
    """Create an API key in a service's database and print it (shown once)."""
    from shared import audit
    from shared.auth import create_key as store_key
    from shared.db import create_engine, create_session_factory

    if service not in SERVICES:
        typer.echo(f"unknown service {service!r}; choose from {', '.join(SERVICES)}", err=True)
        raise typer.Exit(2)
    url, _ = _service_database(service)

    async def run() -> str:
        engine = create_engine(url)
        try:
            async with create_session_factory(engine)() as db:
                audit.start_command(db)
                stored, plaintext = await store_key(
                    db,
                    name=name,
                    role=role,
                    organisation=organisation,
                    organisation_type=organisation_type,
                )
                await audit.record_command(
                    db,
                    "upr keys create",
                    target=stored.id,
                    options={
                        "role": role,
                        "name": name,
                        "organisation": organisation,
                        "organisation_type": organisation_type,
                    },
                )
                await db.commit()
                return plaintext
        finally:
            await engine.dispose()

    try:
        key = asyncio.run(run())
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    typer.echo(key)


# The other commands live in their own modules.
app.command("export")(export.export)
app.command("doctor")(doctor.doctor)
app.add_typer(events.app, name="events")
app.add_typer(dlq.app, name="dlq")
keys_app.command("list")(keys.list_keys)
keys_app.command("revoke")(keys.revoke_key)


if __name__ == "__main__":
    app()
