"""Monitoring scenario: GET /v1/stats at 150,000 recommendations and 300,000 assessments."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
from sqlalchemy import Select
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

from bench.catalog import LoadResult, _ratio, _report, closed_loop
from bench.support import (
    REPO,
    CatalogServer,
    ScratchDatabase,
    latency_summary,
    legacy_csv,
    log,
    nats_namespace,
    scratch_database,
)
from services.catalog import formats
from services.catalog.countries import country_by_iso3
from services.monitoring import queries
from services.monitoring.app import MIGRATIONS
from shared import migrate
from shared.db import create_engine

SETTINGS_ENV = "UPR_BENCH_MONITORING_SETTINGS"

STATS_SIZE = 150_000
STATS_ASSESSMENTS = 300_000
# Share of recommendations someone monitors; the others have no assessment (status no_data).
MONITORED_SHARE = 0.6
STATS_CLIENTS = 20
STATS_P95_GOAL_MS = 100.0
PRIMARY = "issue"
SECONDARY = ("recommending_state", "response")
# (warm-up requests, measured requests, time cap in seconds) per closed-loop run.
PRIMARY_RUN = (100, 1_500, 30.0)
SECONDARY_RUN = (40, 600, 12.0)
RAW_PRIMARY_RUN = (20, 400, 20.0)
RAW_SECONDARY_RUN = (20, 300, 9.0)
# The diagnostic under writes: group_by=issue for a fixed time (the request count is never
# reached) while an assessment is recorded through the API every WRITE_INTERVAL_S.
WRITES_RUN = (1_000_000, 8.0)
WRITE_INTERVAL_S = 0.5
SEED = 2014

ASSESSMENT_STATUSES = (
    ("not_started", 20),
    ("in_progress", 30),
    ("partially_implemented", 25),
    ("fully_implemented", 15),
    ("regressed", 10),
)
ORGANISATIONS = (
    ("Ministry of Justice", "government"),
    ("Ministry of Foreign Affairs", "government"),
    ("National Human Rights Commission", "nhri"),
    ("Ombudsperson's Office", "nhri"),
    ("Amnesty International", "ngo"),
    ("Human Rights Watch", "ngo"),
    ("Local Coalition for Human Rights", "ngo"),
    ("Women's Rights Network", "ngo"),
    ("OHCHR country office", "un"),
    ("UNICEF country office", "un"),
    ("University human rights clinic", "other"),
)
DIMENSIONS = ("law", "practice", "both")

RECOMMENDATION_COLUMNS = (
    "id",
    "number",
    "text",
    "mechanism",
    "state_under_review",
    "cycle",
    "review_date",
    "response",
    "recommending_states",
    "issues",
    "responsible_bodies",
    "catalog_version",
    "status",
    "status_changed_at",
)
ASSESSMENT_COLUMNS = (
    "id",
    "recommendation_id",
    "organisation",
    "assessor_type",
    "status",
    "dimension",
    "assessed_on",
    "summary",
    "evidence_ids",
    "submitted_by",
    "created_at",
)


# --- loading ------------------------------------------------------------------------------------


@dataclass
class Dataset:
    """Rows for the monitoring tables, ready for COPY."""

    recommendations: list[tuple[Any, ...]]
    issues: list[tuple[str, str]]
    recommending_states: list[tuple[str, str]]
    assessments: list[tuple[Any, ...]]


def _country(iso3: str, cache: dict[str, dict[str, str]]) -> dict[str, str]:
    if iso3 not in cache:
        cache[iso3] = {"iso3": iso3, "name": country_by_iso3(iso3).name}
    return cache[iso3]


def build_dataset(
    size: int = STATS_SIZE, assessments: int = STATS_ASSESSMENTS, seed: int = SEED
) -> Dataset:
    """The legacy file's valid rows as cycle 1, 2, 3, ... up to size recommendations, and
    assessments spread over a random MONITORED_SHARE of them.

    Each recommendation's status is that of its latest assessment (by assessed_on, then
    created_at), no_data without one: what assessments.record leaves in the read model.
    """
    records = [
        row.record
        for row in formats.read_upr_info_csv(formats.decode_upload(legacy_csv().read_bytes()))
        if row.record is not None
    ]
    rng = random.Random(seed)
    countries: dict[str, dict[str, str]] = {}
    base: list[dict[str, Any]] = []
    for n, record in enumerate(records, 1):
        states = list(dict.fromkeys(record["recommending_states"]))
        responses = record["responses"]
        base.append(
            {
                "n": n,
                "text": record["text"],
                "sur": record["state_under_review"],
                "response": responses[-1]["position"] if responses else None,
                "states": states,
                "states_json": json.dumps([_country(s, countries) for s in states]),
                "issues": list(dict.fromkeys(record["issues"])),
                "issues_json": json.dumps(list(dict.fromkeys(record["issues"]))),
            }
        )
    ids: list[str] = []
    recs: list[dict[str, Any]] = []
    cycle = 0
    while len(ids) < size:
        cycle += 1
        for item in base[: size - len(ids)]:
            ids.append(f"{item['sur']}-{cycle}-{item['n']}")
            recs.append({**item, "cycle": cycle})

    # Assessments: who says what about which recommendation, and when.
    monitored = rng.sample(range(size), int(size * MONITORED_SHARE))
    statuses = [s for s, _ in ASSESSMENT_STATUSES]
    weights = [w for _, w in ASSESSMENT_STATUSES]
    start = dt.datetime(2015, 1, 1, tzinfo=dt.UTC)
    latest: dict[int, tuple[dt.date, dt.datetime, str]] = {}
    assessment_rows: list[tuple[Any, ...]] = []
    keys = [f"{rng.getrandbits(64):016x}" for _ in range(20)]
    for _ in range(assessments):
        index = monitored[rng.randrange(len(monitored))]
        organisation, assessor_type = ORGANISATIONS[rng.randrange(len(ORGANISATIONS))]
        status = rng.choices(statuses, weights)[0]
        created_at = start + dt.timedelta(seconds=rng.randrange(10 * 365 * 86_400))
        assessed_on = created_at.date() - dt.timedelta(days=rng.randrange(30))
        assessment_rows.append(
            (
                f"{rng.getrandbits(128):032x}",
                ids[index],
                organisation,
                assessor_type,
                status,
                DIMENSIONS[rng.randrange(3)],
                assessed_on,
                None if rng.random() < 0.7 else f"{status.replace('_', ' ')} per {organisation}",
                "[]",
                keys[rng.randrange(len(keys))],
                created_at,
            )
        )
        previous = latest.get(index)
        if previous is None or (assessed_on, created_at) > previous[:2]:
            latest[index] = (assessed_on, created_at, status)

    recommendations = []
    issues: list[tuple[str, str]] = []
    rs: list[tuple[str, str]] = []
    for index, (rid, item) in enumerate(zip(ids, recs, strict=True)):
        last = latest.get(index)
        recommendations.append(
            (
                rid,
                str(item["n"]),
                item["text"],
                "upr",
                item["sur"],
                item["cycle"],
                None,
                item["response"],
                item["states_json"],
                item["issues_json"],
                "[]",
                1,
                last[2] if last else "no_data",
                last[1] if last else None,
            )
        )
        issues.extend((rid, issue) for issue in item["issues"])
        rs.extend((rid, iso3) for iso3 in item["states"])
    return Dataset(recommendations, issues, rs, assessment_rows)


async def load(db: ScratchDatabase) -> dict[str, Any]:
    """Migrate the scratch database with the monitoring migrations and COPY the dataset in."""
    engine = create_engine(db.sqlalchemy_url)
    try:
        await migrate.upgrade(engine, MIGRATIONS)
    finally:
        await engine.dispose()
    start = time.perf_counter()
    data = build_dataset()
    built = time.perf_counter()
    conn = await asyncpg.connect(db.url)
    try:
        async with conn.transaction():
            for table, records, columns in (
                ("recommendations", data.recommendations, RECOMMENDATION_COLUMNS),
                ("recommendation_issues", data.issues, ("recommendation_id", "issue")),
                (
                    "recommendation_recommending_states",
                    data.recommending_states,
                    ("recommendation_id", "iso3"),
                ),
                ("assessments", data.assessments, ASSESSMENT_COLUMNS),
            ):
                await conn.copy_records_to_table(table, records=records, columns=list(columns))
        copied = time.perf_counter()
        await conn.execute("VACUUM ANALYZE")
        # The read model's status must be what the service would have set: the latest
        # assessment's, no_data without one.
        inconsistent = await conn.fetchval(
            """
            SELECT count(*) FROM recommendations r
            LEFT JOIN LATERAL (
                SELECT a.status FROM assessments a WHERE a.recommendation_id = r.id
                ORDER BY a.assessed_on DESC, a.created_at DESC LIMIT 1
            ) l ON true
            WHERE r.status <> coalesce(l.status, 'no_data')
            """
        )
        if inconsistent:
            raise AssertionError(f"{inconsistent} recommendations' status is not the latest")
        counts = {
            table: await conn.fetchval(f"SELECT count(*) FROM {table}")
            for table in (
                "recommendations",
                "recommendation_issues",
                "recommendation_recommending_states",
                "assessments",
            )
        }
        sizes = await conn.fetchval("SELECT pg_database_size(current_database())")
    finally:
        await conn.close()
    return {
        "rows": counts,
        "database_mib": round(sizes / 1024 / 1024, 1),
        "build_s": round(built - start, 1),
        "copy_s": round(copied - built, 1),
        "load_s": round(time.perf_counter() - start, 1),
    }


# --- the monitoring service as a real uvicorn server --------------------------------------------


def serve_monitoring() -> None:
    """Entry point of the server subprocess: uvicorn on create_app(MonitoringSettings(...))."""
    import uvicorn

    from services.monitoring.app import create_app
    from services.monitoring.settings import MonitoringSettings

    settings = MonitoringSettings(**json.loads(os.environ[SETTINGS_ENV]))
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
    )


@dataclass
class MonitoringServer(CatalogServer):
    """The monitoring service in a child process (same plumbing as the catalog server)."""

    upload_dir: str = ""
    admin_key: str = ""

    def _spawn(self, options: dict[str, Any]) -> subprocess.Popen[bytes]:  # type: ignore[override]
        self.admin_key = options["admin_api_key"]
        options = {**options, "upload_dir": self.upload_dir}
        return subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from bench.monitoring import serve_monitoring; serve_monitoring()",
            ],
            cwd=REPO,
            env={**os.environ, SETTINGS_ENV: json.dumps(options)},
        )


@contextlib.asynccontextmanager
async def monitoring_server(database_url: str, namespace: str) -> AsyncIterator[MonitoringServer]:
    """A running monitoring server on a free port (uploads in a temporary folder), stopped after."""
    with tempfile.TemporaryDirectory(prefix="upr-bench-evidence-") as uploads:
        server = MonitoringServer(
            database_url=database_url, namespace=namespace, upload_dir=uploads
        )
        await server.start()
        try:
            yield server
        finally:
            server.stop()


# --- the SQL stats.compute sends, straight through asyncpg --------------------------------------


def _compile(stmt: Select[Any]) -> tuple[str, list[Any]]:
    compiled = stmt.compile(dialect=asyncpg_dialect(), compile_kwargs={"render_postcompile": True})
    names = compiled.positiontup or []
    return str(compiled), [compiled.params[name] for name in names]


@dataclass
class RawStats:
    """The two statements stats.compute runs without filters: per group, then overall."""

    group_by: str
    group_sql: str
    group_args: list[Any]
    overall_sql: str
    overall_args: list[Any]


def raw_stats(group_by: str) -> RawStats:
    """The SQL of queries.status_counts for this grouping and for the overall figures."""
    group_sql, group_args = _compile(queries.status_counts_statement(group_by, []))
    overall_sql, overall_args = _compile(queries.status_counts_statement(None, []))
    return RawStats(group_by, group_sql, group_args, overall_sql, overall_args)


Counts = dict[str, dict[str, int]]


async def _raw_answer(pool: asyncpg.Pool, raw: RawStats) -> tuple[Counts, dict[str, int]]:
    """{group: {status: n}} and {status: n} overall, straight from SQL."""
    async with pool.acquire() as conn:
        grouped: Counts = {}
        for key, status, n in await conn.fetch(raw.group_sql, *raw.group_args):
            grouped.setdefault("none" if key is None else str(key), {})[status] = n
        overall = {
            status: n for _, status, n in await conn.fetch(raw.overall_sql, *raw.overall_args)
        }
    return grouped, overall


def _nonzero(by_status: dict[str, int]) -> dict[str, int]:
    return {status: n for status, n in by_status.items() if n}


async def _check_http(
    server: MonitoringServer, group_by: str, expected: tuple[Counts, dict[str, int]]
) -> int:
    """The HTTP answer has the same counts as the raw SQL; returns the number of groups."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as client:
        response = await client.get("/v1/stats", params={"group_by": group_by})
        response.raise_for_status()
        body = response.json()
    grouped = {g["key"]: _nonzero(g["by_status"]) for g in body["groups"]}
    if grouped != expected[0] or _nonzero(body["overall"]["by_status"]) != expected[1]:
        raise AssertionError(f"group_by={group_by}: HTTP and raw SQL counts disagree")
    return len(grouped)


async def _explain(pool: asyncpg.Pool, raw: RawStats) -> dict[str, Any]:
    """EXPLAIN ANALYZE of both statements, once each (after the measured runs' warm-up)."""
    out: dict[str, Any] = {}
    async with pool.acquire() as conn:
        for name, sql, args in (
            ("group", raw.group_sql, raw.group_args),
            ("overall", raw.overall_sql, raw.overall_args),
        ):
            plan = await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", *args)
            top = json.loads(plan)[0] if isinstance(plan, str) else plan[0]
            out[name] = {
                "execution_ms": round(top["Execution Time"], 1),
                "plan": _plan_outline(top["Plan"]),
            }
    return out


def _plan_outline(node: dict[str, Any], depth: int = 0) -> list[str]:
    """One line per plan node: type, relation or index, actual rows and time."""
    name = node["Node Type"]
    if node.get("Index Name"):
        name += f" using {node['Index Name']}"
    elif node.get("Relation Name"):
        name += f" on {node['Relation Name']}"
    line = (
        f"{'  ' * depth}{name} (rows={node.get('Actual Rows')}, loops={node.get('Actual Loops')},"
        f" time={node.get('Actual Total Time')} ms)"
    )
    lines = [line]
    for child in node.get("Plans", []):
        lines += _plan_outline(child, depth + 1)
    return lines


# --- closed loops -------------------------------------------------------------------------------


async def _http_run(
    server: MonitoringServer, group_by: str, requests: int, cap_s: float
) -> LoadResult:
    clients = [
        httpx.AsyncClient(base_url=server.base_url, timeout=120) for _ in range(STATS_CLIENTS)
    ]
    try:

        def worker(client: httpx.AsyncClient) -> Callable[[int], Awaitable[bool]]:
            async def one(i: int) -> bool:
                response = await client.get("/v1/stats", params={"group_by": group_by})
                return response.status_code == 200

            return one

        return await closed_loop(
            [worker(c) for c in clients], requests, kinds=1, time_cap_s=cap_s, server_pid=server.pid
        )
    finally:
        for client in clients:
            await client.aclose()


async def _raw_run(pool: asyncpg.Pool, raw: RawStats, requests: int, cap_s: float) -> LoadResult:
    async def one(i: int) -> bool:
        async with pool.acquire() as conn:
            await conn.fetch(raw.group_sql, *raw.group_args)
            await conn.fetch(raw.overall_sql, *raw.overall_args)
        return True

    return await closed_loop([one] * STATS_CLIENTS, requests, kinds=1, time_cap_s=cap_s)


async def _measure(
    run: Callable[[int, float], Awaitable[LoadResult]], plan: tuple[int, int, float], what: str
) -> dict[str, Any]:
    """Warm up (capped at a third of the time cap), then measure; the report of the latter."""
    warmup, requests, cap_s = plan
    if warmup:
        await run(warmup, cap_s / 3)
    log(f"monitoring_stats: {what}: {requests} requests, {STATS_CLIENTS} clients, cap {cap_s} s")
    return _report(await run(requests, cap_s), requests)


async def _generation(pool: asyncpg.Pool) -> int | None:
    """The statistics generation (migration 0002), None before that migration existed."""
    exists = await pool.fetchval("SELECT to_regclass('stats_generation') IS NOT NULL")
    return await pool.fetchval("SELECT value FROM stats_generation") if exists else None


async def _with_writes(
    server: MonitoringServer, pool: asyncpg.Pool, ids: list[str]
) -> dict[str, Any]:
    """group_by=issue while an assessor records an assessment every WRITE_INTERVAL_S through
    the API (each one changes the read model, as real use does)."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        response = await client.post(
            "/v1/keys",
            json={"name": "bench assessor", "role": "assessor", "organisation": "Bench NGO"},
            headers={"Authorization": f"Bearer {server.admin_key}"},
        )
        response.raise_for_status()
        headers = {"Authorization": f"Bearer {response.json()['key']}"}
        rng = random.Random(SEED + 1)
        statuses = [s for s, _ in ASSESSMENT_STATUSES]
        written: list[float] = []
        failed = 0

        async def writer() -> None:
            nonlocal failed
            while True:
                await asyncio.sleep(WRITE_INTERVAL_S)
                t0 = time.perf_counter()
                answer = await client.post(
                    f"/v1/recommendations/{rng.choice(ids)}/assessments",
                    json={"status": rng.choice(statuses), "assessor_type": "ngo"},
                    headers=headers,
                )
                if answer.status_code == 201:
                    written.append(time.perf_counter() - t0)
                else:
                    failed += 1

        generation_before = await _generation(pool)
        task = asyncio.create_task(writer())
        try:
            requests, cap_s = WRITES_RUN
            log(
                f"monitoring_stats: group_by=issue with an assessment every {WRITE_INTERVAL_S} s "
                f"(diagnostic), cap {cap_s} s"
            )
            result = await _http_run(server, PRIMARY, requests, cap_s)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    generation_after = await _generation(pool)
    return {
        "write_interval_s": WRITE_INTERVAL_S,
        "assessments_recorded": len(written),
        "assessments_failed": failed,
        "assessment_latency": latency_summary(written),
        "stats_generation_moves": None
        if generation_before is None or generation_after is None
        else generation_after - generation_before,
        **_report(result, requests),
        "requests": f"as many as fit in {cap_s} s",
    }


# --- the scenario -------------------------------------------------------------------------------


async def _stats(db: ScratchDatabase) -> dict[str, Any]:
    loaded = await load(db)
    log(f"monitoring_stats: loaded {loaded['rows']} in {loaded['load_s']} s")
    group_bys = (PRIMARY, *SECONDARY)
    compiled = {g: raw_stats(g) for g in group_bys}
    pool = await asyncpg.create_pool(db.url, min_size=STATS_CLIENTS, max_size=STATS_CLIENTS)
    try:
        expected = {g: await _raw_answer(pool, compiled[g]) for g in group_bys}
        ids = [r["id"] for r in await pool.fetch("SELECT id FROM recommendations")]
        http: dict[str, dict[str, Any]] = {}
        groups: dict[str, int] = {}
        async with (
            nats_namespace() as namespace,
            monitoring_server(db.sqlalchemy_url, namespace) as server,
        ):
            for g in group_bys:
                groups[g] = await _check_http(server, g, expected[g])
            log(f"monitoring_stats: HTTP answers match the raw SQL; groups {groups}")
            for g in group_bys:
                plan = PRIMARY_RUN if g == PRIMARY else SECONDARY_RUN
                http[g] = await _measure(
                    lambda n, cap, g=g: _http_run(server, g, n, cap), plan, f"HTTP group_by={g}"
                )
            with_writes = await _with_writes(server, pool, ids)
        raw: dict[str, dict[str, Any]] = {}
        for g in group_bys:
            plan = RAW_PRIMARY_RUN if g == PRIMARY else RAW_SECONDARY_RUN
            raw[g] = await _measure(
                lambda n, cap, g=g: _raw_run(pool, compiled[g], n, cap), plan, f"raw SQL {g}"
            )
        explain = {g: await _explain(pool, compiled[g]) for g in group_bys}
    finally:
        await pool.close()
    primary = http[PRIMARY]
    p95 = primary.get("p95_ms", float("inf"))
    return {
        "description": "GET /v1/stats?group_by=issue (no filter) on a real uvicorn server, closed "
        "loop of concurrent httpx clients; baseline: the same two GROUP BY statements "
        "stats.compute sends (per group, overall) straight through asyncpg at the same "
        "concurrency",
        "recommendations": loaded["rows"]["recommendations"],
        "assessments": loaded["rows"]["assessments"],
        "rows": loaded["rows"],
        "database_mib": loaded["database_mib"],
        "load_s_not_measured": loaded["load_s"],
        "clients": STATS_CLIENTS,
        "client_side": f"{STATS_CLIENTS} httpx.AsyncClient in the bench process; server is a "
        "separate uvicorn process (1 worker)",
        "groups": groups,
        "p50_ms": primary.get("p50_ms"),
        "p95_ms": primary.get("p95_ms"),
        "p99_ms": primary.get("p99_ms"),
        "requests_per_s": primary["requests_per_s"],
        "goal": {"p95_ms_at_most": STATS_P95_GOAL_MS, "met": p95 <= STATS_P95_GOAL_MS},
        "http": primary,
        "http_secondary": {g: http[g] for g in SECONDARY},
        "raw_sql_baseline": raw[PRIMARY],
        "raw_sql_secondary": {g: raw[g] for g in SECONDARY},
        "http_over_raw_p50": _ratio(primary, raw[PRIMARY], "p50_ms"),
        "raw_over_http_throughput": _ratio(raw[PRIMARY], primary, "requests_per_s"),
        "http_with_writes_diagnostic": with_writes,
        "explain_analyze": explain,
    }


async def monitoring_stats() -> dict[str, Any]:
    """Statistics by issue at 150,000 recommendations / 300,000 assessments, against raw SQL."""
    async with scratch_database() as db:
        return await _stats(db)


SCENARIOS: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = {
    "monitoring_stats": monitoring_stats,
}
