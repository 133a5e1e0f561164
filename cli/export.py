"""`upr export`: the catalog's export (csv, json, ndjson) read straight from its database."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

from cli.common import existing_database, fail, run

FORMATS = ("csv", "json", "ndjson")
ListOpt = Annotated[list[str] | None, typer.Option(help="Repeat to OR values")]


def _filters(**given: Any) -> Any:
    """The catalog's filter, checked like the HTTP export checks it; a bad value exits with 2."""
    from services.catalog import queries
    from services.catalog.countries import UnknownCountry, resolve_country
    from services.catalog.routes import RESPONSE_FILTER_VALUES
    from services.catalog.vocabulary import UnknownIssue, normalise_issue

    def check(values: list[str], name: str, allowed: set[str] | dict[str, str]) -> list[str]:
        out = []
        for value in values:
            key = value.strip().lower()
            if key not in allowed:
                fail(f"unknown {name} {value!r}; expected one of {', '.join(sorted(allowed))}", 2)
            out.append(allowed[key] if isinstance(allowed, dict) else key)
        return out

    def countries(values: list[str]) -> list[str]:
        try:
            return [resolve_country(v).iso3 for v in values]
        except UnknownCountry as exc:
            fail(str(exc), 2)

    try:
        issues = [normalise_issue(v) for v in given["issue"]]
    except UnknownIssue as exc:
        fail(str(exc), 2)
    for number in given["action_category"]:
        if not 1 <= number <= 5:
            fail(f"action category {number} is not between 1 and 5", 2)
    return queries.RecommendationFilter(
        mechanism=check(
            given["mechanism"], "mechanism", {"upr", "treaty_body", "special_procedure"}
        ),
        state_under_review=countries(given["state_under_review"]),
        cycle=given["cycle"],
        recommending_state=countries(given["recommending_state"]),
        response=check(given["response"], "response", RESPONSE_FILTER_VALUES),
        issue=issues,
        action_category=given["action_category"],
        responsible_body=given["responsible_body"],
        priority=check(given["priority"], "priority", {"short", "medium", "long"}),
        cluster=given["cluster"],
        q=given["q"],
    )


async def write_export(url: str, filters: Any, fmt: str, out: TextIO) -> int:
    """Write every matching recommendation to `out`; return how many."""
    from services.catalog import exports, queries, recommendations
    from shared.db import create_engine, create_session_factory

    engine = create_engine(url, pool_size=1, max_overflow=0)
    count = 0
    try:
        async with create_session_factory(engine)() as session:
            await session.connection()  # fail before writing anything
            if fmt == "csv":
                out.write(exports.csv_header())
            elif fmt == "json":
                out.write("[")
            async for batch in queries.iter_full(session, filters):
                for rec in batch:
                    snap = recommendations.snapshot(rec)
                    if fmt == "csv":
                        out.write(exports.csv_row(snap))
                    elif fmt == "json":
                        out.write(("," if count else "") + json.dumps(snap, ensure_ascii=False))
                    else:
                        out.write(json.dumps(snap, ensure_ascii=False) + "\n")
                    count += 1
            if fmt == "json":
                out.write("]\n")
    finally:
        await engine.dispose()
    return count


def export(
    format: Annotated[str, typer.Option("--format", "-f", help="csv, json or ndjson")] = "csv",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here (default: standard output)")
    ] = None,
    state_under_review: ListOpt = None,
    cycle: Annotated[list[int] | None, typer.Option(min=1, max=20)] = None,
    recommending_state: ListOpt = None,
    response: ListOpt = None,
    issue: ListOpt = None,
    action_category: Annotated[list[int] | None, typer.Option(help="1 to 5")] = None,
    responsible_body: ListOpt = None,
    priority: ListOpt = None,
    mechanism: ListOpt = None,
    cluster: Annotated[str | None, typer.Option()] = None,
    q: Annotated[str | None, typer.Option(help="Full-text search")] = None,
) -> None:
    """Export recommendations from the catalog database, with the API's filters."""
    if format not in FORMATS:
        fail(f"unknown format {format!r}; use one of {', '.join(FORMATS)}", 2)
    filters = _filters(
        state_under_review=state_under_review or [],
        cycle=cycle or [],
        recommending_state=recommending_state or [],
        response=response or [],
        issue=issue or [],
        action_category=action_category or [],
        responsible_body=responsible_body or [],
        priority=priority or [],
        mechanism=mechanism or [],
        cluster=cluster,
        q=q,
    )
    url = existing_database("catalog")
    if output is None:
        count = run(write_export(url, filters, format, sys.stdout))
        typer.echo(f"exported {count} recommendation(s)", err=True)
        return
    # Write beside the target and rename, so a failed export never leaves half a file.
    partial = output.with_name(output.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as out:
            count = run(write_export(url, filters, format, out))
        os.replace(partial, output)
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}")
    finally:
        partial.unlink(missing_ok=True)
    typer.echo(f"exported {count} recommendation(s) to {output}")
