"""`upr keys list` and `upr keys revoke`, straight on a service's database."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cli.common import existing_database, fail, print_json, run

ServiceOpt = Annotated[str, typer.Option(help="catalog, monitoring or notifications")]


def list_keys(
    service: ServiceOpt = "catalog",
    revoked: Annotated[bool, typer.Option(help="Include revoked keys")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """List a service's API keys (never the keys themselves)."""
    from sqlalchemy import select

    from shared.auth import ApiKey
    from shared.db import create_engine, create_session_factory

    url = existing_database(service)

    async def main() -> list[dict[str, Any]]:
        engine = create_engine(url, pool_size=1, max_overflow=0)
        try:
            async with create_session_factory(engine)() as db:
                stmt = select(ApiKey).order_by(ApiKey.created_at)
                if not revoked:
                    stmt = stmt.where(ApiKey.revoked_at.is_(None))
                return [
                    {
                        "id": k.id,
                        "name": k.name,
                        "role": k.role,
                        "organisation": k.organisation,
                        "prefix": k.prefix,
                        "created_at": k.created_at.isoformat(),
                        "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
                    }
                    for k in (await db.scalars(stmt)).all()
                ]
        finally:
            await engine.dispose()

    keys = run(main())
    if json_output:
        print_json(keys)
        return
    if not keys:
        typer.echo(f"no {'' if revoked else 'active '}keys on {service}")
    for key in keys:
        state = f"revoked {key['revoked_at']}" if key["revoked_at"] else "active"
        organisation = f" ({key['organisation']})" if key["organisation"] else ""
        typer.echo(
            f"{key['id']}  {key['prefix']}...  {key['role']:<8}  {key['name']}{organisation}  "
            f"created {key['created_at']}  {state}"
        )


def revoke_key(
    key_id: Annotated[str, typer.Argument(help="The key's id (upr keys list)")],
    service: ServiceOpt = "catalog",
) -> None:
    """Revoke an API key; it stops working on the next request."""
    from shared import audit
    from shared.auth import revoke_key as revoke
    from shared.db import create_engine, create_session_factory

    url = existing_database(service)

    async def main() -> bool:
        engine = create_engine(url, pool_size=1, max_overflow=0)
        try:
            async with create_session_factory(engine)() as db:
                audit.start_command(db)
                revoked = await revoke(db, key_id)
                if revoked:
                    await audit.record_command(
                        db, "upr keys revoke", target=key_id, options={"service": service}
                    )
                await db.commit()
                return revoked
        finally:
            await engine.dispose()

    if not run(main()):
        fail(f"no active key {key_id!r} on {service}")
    typer.echo(f"revoked {key_id} on {service}")
