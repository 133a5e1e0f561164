"""Helpers the `upr` subcommands share: settings, errors, NATS connections, time parsing."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js import JetStreamContext

    from shared.settings import BaseServiceSettings

T = TypeVar("T")
SERVICE_NAMES = ("catalog", "monitoring", "notifications")
# The durable consumer each consuming service runs (services/*/consumers.py).
SERVICE_CONSUMERS = {"monitoring": "monitoring-catalog", "notifications": "notifications"}
_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def fail(message: str, code: int = 1) -> NoReturn:
    """Print an error to stderr and exit with a non-zero code."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def print_json(value: Any) -> None:
    """Print a value as indented JSON (dates as ISO 8601)."""
    typer.echo(json.dumps(value, indent=2, default=str, ensure_ascii=False))


def service_settings(name: str) -> BaseServiceSettings:
    """A service's settings from the environment; an invalid configuration exits with 2."""
    from pydantic import ValidationError

    if name not in SERVICE_NAMES:
        fail(f"unknown service {name!r}; choose from {', '.join(SERVICE_NAMES)}", 2)
    try:
        if name == "catalog":
            from services.catalog.settings import CatalogSettings

            return CatalogSettings()
        if name == "monitoring":
            from services.monitoring.settings import MonitoringSettings

            return MonitoringSettings()
        from services.notifications.settings import NotificationsSettings

        return NotificationsSettings()
    except ValidationError as exc:
        fail(f"the {name} configuration is invalid: {_first_error(exc)}", 2)


def existing_database(name: str) -> str:
    """A service's database URL; a SQLite file that does not exist yet exits with 1."""
    from pathlib import Path

    from sqlalchemy.engine import make_url

    url = service_settings(name).database_url
    parsed = make_url(url)
    on_disk = parsed.get_backend_name() == "sqlite" and parsed.database not in (
        None,
        "",
        ":memory:",
    )
    if on_disk and not Path(parsed.database or "").exists():
        fail(f"no {name} database at {parsed.database}; run `upr migrate {name}` first")
    return url


def bus_settings() -> BaseServiceSettings:
    """The shared settings (NATS URL and namespace); an invalid configuration exits with 2."""
    from pydantic import ValidationError

    from shared.settings import BaseServiceSettings

    try:
        return BaseServiceSettings()
    except ValidationError as exc:
        fail(f"the configuration is invalid: {_first_error(exc)}", 2)


def _first_error(exc: Any) -> str:
    errors = exc.errors()
    if not errors:
        return str(exc)
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    message = str(first.get("msg", "")).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """A point in time: ISO 8601 (naive means UTC), a date, or relative like 30m, 6h, 2d."""
    now = now or datetime.now(UTC)
    text = value.strip()
    relative = _RELATIVE.match(text.lower())
    if relative:
        return now - timedelta(**{_UNITS[relative.group(2)]: int(relative.group(1))})
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise typer.BadParameter(
            f"{value!r} is not a time; use e.g. 2026-11-28T09:00:00Z, 2026-11-28, 6h or 2d"
        ) from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def run(coro: Awaitable[T]) -> T:
    """Run a coroutine; connection failures become a plain message and exit code 1."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    async def main() -> T:
        return await coro

    try:
        return asyncio.run(main())
    except (OperationalError, DBAPIError) as exc:
        message = str(exc.orig or exc).splitlines()[0]
        if "no such table" in message or ("relation" in message and "does not exist" in message):
            message += "; run `upr migrate` first"
        fail(f"database error: {message}")
    except OSError as exc:
        fail(f"cannot connect: {exc}")


async def connect_nats(url: str, name: str) -> Client:
    """One NATS connection attempt, bounded in time; raises if the server does not answer."""
    import nats

    async def quiet(_: Exception) -> None:
        """The failure is reported by the caller, once."""

    return await asyncio.wait_for(
        nats.connect(
            # A cluster: several URLs, comma-separated, as the services take them.
            servers=[u.strip() for u in url.split(",") if u.strip()],
            name=name,
            allow_reconnect=False,
            # nats-py retries forever with 0; 1 means one more try.
            max_reconnect_attempts=1,
            reconnect_time_wait=0.2,
            connect_timeout=3,
            error_cb=quiet,
        ),
        timeout=8,
    )


@asynccontextmanager
async def jetstream(
    settings: BaseServiceSettings,
) -> AsyncIterator[tuple[Client, JetStreamContext]]:
    """A NATS connection (no reconnects) and its JetStream context; unreachable exits with 1."""
    import nats.errors

    try:
        nc = await connect_nats(settings.nats_url, "upr-cli")
    except (OSError, nats.errors.Error, TimeoutError) as exc:
        fail(
            f"cannot reach NATS at {settings.nats_url} ({exc or type(exc).__name__}); "
            "is it running? Check UPR_NATS_URL"
        )
    try:
        yield nc, nc.jetstream(timeout=5)
    finally:
        await nc.close()
