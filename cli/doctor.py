"""`upr doctor`: check the configuration and everything the services depend on, in plain words."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.common import SERVICE_CONSUMERS, SERVICE_NAMES, connect_nats, fail, print_json

TIMEOUT_S = 5.0


@dataclass
class Check:
    """One check's outcome: what was checked, whether it is fine, and what to do if not."""

    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        """The check as one line for people."""
        if self.ok:
            return f"OK       {self.name}: {self.detail}"
        return f"PROBLEM  {self.name}: {self.detail}" + (f" -> {self.fix}" if self.fix else "")


def _settings_class(name: str) -> Any:
    if name == "catalog":
        from services.catalog.settings import CatalogSettings

        return CatalogSettings
    if name == "monitoring":
        from services.monitoring.settings import MonitoringSettings

        return MonitoringSettings
    from services.notifications.settings import NotificationsSettings

    return NotificationsSettings


def _migrations(name: str) -> Path:
    return Path(__file__).resolve().parents[1] / "services" / name / "migrations"


def _error(exc: BaseException) -> str:
    """A one-line description of an exception, without SQL or tracebacks."""
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()[0] if str(inner).strip() else ""
    return text or type(inner).__name__


def check_settings(name: str) -> tuple[Check, Any]:
    """Load a service's settings; on placeholder secrets report it and go on with dev rules."""
    from pydantic import ValidationError

    cls = _settings_class(name)
    try:
        settings = cls()
    except ValidationError as exc:
        message = "; ".join(
            str(e.get("msg", "")).removeprefix("Value error, ") for e in exc.errors()
        )
        check = Check(
            f"{name} settings",
            False,
            message,
            "set real values in the environment or .env (see docs/operations.md#secrets)",
        )
        try:
            return check, cls(environment="dev")
        except ValidationError:
            return check, None
    if settings.environment == "dev":
        detail = "environment is dev: placeholder secrets are accepted (never in production)"
    else:
        detail = f"environment is {settings.environment}; no placeholder secrets"
    return Check(f"{name} settings", True, detail), settings


async def check_database(name: str, url: str) -> Check:
    """The database answers and is migrated to the code's head revision."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import make_url

    from shared.db import create_engine
    from shared.migrate import alembic_config

    label = f"{name} database"
    variable = f"UPR_{name.upper()}_DATABASE_URL"
    try:
        parsed = make_url(url)
    except Exception:
        return Check(label, False, "the URL cannot be read", f"fix {variable}")
    shown = parsed.render_as_string(hide_password=True)
    sqlite_file = parsed.get_backend_name() == "sqlite" and parsed.database not in (
        None,
        "",
        ":memory:",
    )
    if sqlite_file and not Path(parsed.database or "").exists():
        return Check(
            label, False, f"no database file at {parsed.database}", f"run `upr migrate {name}`"
        )
    heads = set(ScriptDirectory.from_config(alembic_config(_migrations(name))).get_heads())
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        async with asyncio.timeout(TIMEOUT_S), engine.connect() as conn:
            current = set(
                await conn.run_sync(
                    lambda sync: MigrationContext.configure(sync).get_current_heads()
                )
            )
    except Exception as exc:
        return Check(
            label,
            False,
            f"cannot reach {shown}: {_error(exc)}",
            f"check that the database server runs and {variable} is right",
        )
    finally:
        await engine.dispose()
    if current != heads:
        at = ", ".join(sorted(current)) or "an empty database"
        return Check(
            label,
            False,
            f"{shown} is at {at}; the code expects {', '.join(sorted(heads))}",
            f"run `upr migrate {name}` (or start the service with UPR_MIGRATE_ON_START=true)",
        )
    return Check(label, True, f"{shown} reachable, migrated to {', '.join(sorted(heads))}")


async def check_nats(settings: Any, consumers: list[str]) -> list[Check]:
    """NATS answers, JetStream is on, the streams exist, and no event waits in the DLQ."""
    import nats.errors
    import nats.js.errors

    url = settings.nats_url
    try:
        nc = await connect_nats(url, "upr-doctor")
    except (OSError, nats.errors.Error, TimeoutError) as exc:
        return [
            Check(
                "NATS",
                False,
                f"cannot reach {url} ({_error(exc)})",
                "start nats-server with JetStream (-js), or fix UPR_NATS_URL",
            )
        ]
    checks = [Check("NATS", True, f"{url} answers (server {nc.connected_server_version})")]
    try:
        js = nc.jetstream(timeout=TIMEOUT_S)
        try:
            await js.account_info()
        except Exception as exc:
            checks.append(
                Check(
                    "JetStream",
                    False,
                    f"not available ({_error(exc) or 'no answer'})",
                    "start nats-server with JetStream enabled (-js, or jetstream {} in its config)",
                )
            )
            return checks
        checks.append(Check("JetStream", True, "enabled"))
        stream = settings.nats_namespace.upper()
        try:
            info = await js.stream_info(stream)
        except nats.js.errors.NotFoundError:
            checks.append(
                Check(
                    f"stream {stream}",
                    False,
                    "missing",
                    "start any service once: it creates the streams",
                )
            )
        else:
            present = {c.name for c in await js.consumers_info(stream)}
            missing = [c for c in consumers if c not in present]
            detail = f"{info.state.messages} events; consumers: {', '.join(sorted(present)) or '-'}"
            if missing:
                checks.append(
                    Check(
                        f"stream {stream}",
                        False,
                        f"{detail}; missing consumer(s) {', '.join(missing)}",
                        "start the service(s) that own them; they create their consumer",
                    )
                )
            else:
                checks.append(Check(f"stream {stream}", True, detail))
        dlq = f"{stream}_DLQ"
        try:
            parked = (await js.stream_info(dlq)).state.messages
        except nats.js.errors.NotFoundError:
            checks.append(
                Check(f"stream {dlq}", False, "missing", "start any service once: it creates it")
            )
        else:
            if parked:
                checks.append(
                    Check(
                        f"stream {dlq}",
                        False,
                        f"{parked} dead-lettered event(s) wait",
                        "read them with `upr dlq list`, then `upr dlq retry` or `upr dlq drop`",
                    )
                )
            else:
                checks.append(Check(f"stream {dlq}", True, "no dead-lettered events"))
    finally:
        await nc.close()
    return checks


async def check_smtp(settings: Any) -> Check:
    """Connect, EHLO, STARTTLS and log in the way notifications does."""
    import aiosmtplib

    where = f"{settings.smtp_host}:{settings.smtp_port}"
    client = aiosmtplib.SMTP(
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        timeout=TIMEOUT_S,
        start_tls={"auto": None, "always": True, "never": False}[settings.smtp_starttls],
        username=settings.smtp_username or None,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
    )
    try:
        await client.connect()
        await client.ehlo()
        await client.quit()
    except aiosmtplib.SMTPAuthenticationError as exc:
        client.close()
        return Check(
            "SMTP",
            False,
            f"{where} refused the login ({exc.code})",
            "check UPR_SMTP_USERNAME/PASSWORD",
        )
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        client.close()
        return Check(
            "SMTP",
            False,
            f"cannot talk to {where}: {_error(exc)}",
            "check UPR_SMTP_HOST, UPR_SMTP_PORT and UPR_SMTP_STARTTLS, and that the server runs",
        )
    login = ", login accepted" if settings.smtp_username else ""
    return Check("SMTP", True, f"{where} answers EHLO (STARTTLS {settings.smtp_starttls}){login}")


async def check_sms(settings: Any) -> Check:
    """The SMS provider is configured and its URL answers HTTP."""
    import httpx

    if settings.sms_provider == "twilio":
        missing = [
            name
            for name, value in (
                ("UPR_TWILIO_ACCOUNT_SID", settings.twilio_account_sid),
                ("UPR_TWILIO_AUTH_TOKEN", settings.twilio_auth_token),
            )
            if not value
        ]
        if missing:
            return Check("SMS (twilio)", False, "not configured", f"set {', '.join(missing)}")
        url = settings.twilio_base_url
    else:
        url = settings.sms_gateway_url
        if not url.startswith(("http://", "https://")):
            return Check(
                "SMS gateway",
                False,
                f"{url!r} is not an http(s) URL",
                "set UPR_SMS_GATEWAY_URL",
            )
    label = "SMS (twilio)" if settings.sms_provider == "twilio" else "SMS gateway"
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_S) as client:
            answer = await client.get(url)
    except httpx.HTTPError as exc:
        return Check(
            label,
            False,
            f"cannot reach {url}: {_error(exc)}",
            "check the URL and that the gateway runs",
        )
    if answer.status_code == 404 or answer.status_code >= 500:
        return Check(
            label,
            False,
            f"{url} answers {answer.status_code}",
            "check the URL's path, and the gateway's health",
        )
    return Check(label, True, f"{url} answers HTTP ({answer.status_code})")


async def run_checks(services: list[str]) -> list[Check]:
    """Every check for the chosen services, in order."""
    checks: list[Check] = []
    loaded: dict[str, Any] = {}
    for name in services:
        check, settings = check_settings(name)
        checks.append(check)
        if settings is not None:
            loaded[name] = settings
    for name, settings in loaded.items():
        checks.append(await check_database(name, settings.database_url))
    if loaded:
        first = next(iter(loaded.values()))
        consumers = [SERVICE_CONSUMERS[n] for n in services if n in SERVICE_CONSUMERS]
        checks.extend(await check_nats(first, consumers))
    if "notifications" in loaded:
        checks.append(await check_smtp(loaded["notifications"]))
        checks.append(await check_sms(loaded["notifications"]))
    return checks


def doctor(
    service: Annotated[
        list[str] | None, typer.Option(help="Check only these services (default: all three)")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Check databases, NATS, SMTP, the SMS gateway and secrets; exit 1 if anything is wrong."""
    chosen = service or list(SERVICE_NAMES)
    for name in chosen:
        if name not in SERVICE_NAMES:
            fail(f"unknown service {name!r}; choose from {', '.join(SERVICE_NAMES)}", 2)
    checks = asyncio.run(run_checks(chosen))
    problems = [c for c in checks if not c.ok]
    if json_output:
        print_json({"ok": not problems, "checks": [asdict(c) for c in checks]})
    else:
        for check in checks:
            typer.echo(check.line())
        if problems:
            typer.echo(f"{len(problems)} problem(s) found.", err=True)
        else:
            typer.echo("Everything looks fine.")
    if problems:
        raise typer.Exit(1)
