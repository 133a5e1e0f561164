"""`python -m bench [SCENARIO ...]`: run the benchmarks, write bench/results/latest.json."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench.catalog import SCENARIOS as CATALOG_SCENARIOS
from bench.monitoring import SCENARIOS as MONITORING_SCENARIOS
from bench.notify import SCENARIOS as NOTIFY_SCENARIOS
from bench.soak import SCENARIOS as SOAK_SCENARIOS
from bench.support import RESULTS, log, machine_info, utc_timestamp

SCENARIOS = {**CATALOG_SCENARIOS, **MONITORING_SCENARIOS, **NOTIFY_SCENARIOS, **SOAK_SCENARIOS}


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Run the UPR Tracker benchmarks (not tests)."
    )
    parser.add_argument(
        "scenarios",
        nargs="*",
        metavar="SCENARIO",
        help=f"scenarios to run (default: all): {', '.join(SCENARIOS)}",
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = parser.parse_args(argv)
    unknown = [name for name in args.scenarios if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {unknown[0]!r}; known: {', '.join(SCENARIOS)}")
    return args


def _goal_text(result: dict[str, Any]) -> str:
    goal = result.get("goal")
    if not goal:
        return ""
    target = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in goal.items() if k != "met")
    return f"goal ({target}): {'MET' if goal['met'] else 'NOT MET'}"


def summary(name: str, result: dict[str, Any]) -> list[str]:
    """A few readable lines for one scenario's result."""
    if "error" in result:
        return [f"{name}: FAILED: {result['error']}"]
    if name == "catalog_import":
        phases = result["phases_s"]
        return [
            f"{name}: {result['rows']:,} rows in {result['seconds']:.2f} s "
            f"= {result['rows_per_s']:,.0f} rows/s (median of {result['runs']})",
            f"  COPY baseline {result['copy_baseline_rows_per_s']:,.0f} rows/s "
            f"({result['copy_baseline_seconds']:.3f} s); ratio {result['ratio']:.4f}",
            f"  full-text vectors alone {result['fulltext_vectors_s']:.3f} s: ratio ceiling "
            f"{result['ratio_ceiling_with_fulltext']:.4f}",
            f"  created {result['created']:,}, rejected {result['rejected']}, "
            f"unchanged {result['unchanged']}, outbox events {result['outbox_events']:,}",
            f"  read+validate {result['read_and_validate_s']:.2f} s, "
            f"database phase {result['database_phase_s']:.2f} s",
            "  phases: " + ", ".join(f"{k} {v:.2f}" for k, v in phases.items()),
            "  " + _goal_text(result),
        ]
    if name == "catalog_search":
        raw = result["raw_sql_baseline"]
        http = result["http"]
        page = result["raw_sql_page_only_diagnostic"]
        cpu = http["cpu"]
        return [
            f"{name}: {result['recommendations']:,} recommendations, {result['clients']} clients, "
            f"{http['completed']:,} requests",
            f"  HTTP    p50 {http['p50_ms']:.1f} ms, p95 {http['p95_ms']:.1f} ms, "
            f"p99 {http['p99_ms']:.1f} ms, {http['requests_per_s']:.0f} req/s, "
            f"errors {http['errors']}",
            f"  raw SQL p50 {raw['p50_ms']:.1f} ms, p95 {raw['p95_ms']:.1f} ms, "
            f"p99 {raw['p99_ms']:.1f} ms, {raw['requests_per_s']:.0f} req/s",
            f"  raw SQL without the total: p95 {page['p95_ms']:.1f} ms, "
            f"{page['requests_per_s']:.0f} req/s (diagnostic)",
            f"  CPU per HTTP request: PostgreSQL {cpu.get('postgres_cpu_ms_per_request')} ms, "
            f"server process {cpu.get('server_cpu_ms_per_request')} ms, "
            f"client {cpu.get('client_cpu_ms_per_request')} ms; foreign load "
            f"{cpu.get('foreign_cpu_share_of_one_core')} core",
            *(
                f"  one client: {read['path']} {read['params'] or ''} p50 {read['p50_ms']:.1f} ms"
                for read in result.get("single_client_reads_diagnostic", [])
            ),
            "  " + _goal_text(result),
        ]
    if name == "monitoring_stats":
        http = result["http"]
        raw = result["raw_sql_baseline"]
        writes = result["http_with_writes_diagnostic"]
        cpu = http["cpu"]
        lines = [
            f"{name}: {result['recommendations']:,} recommendations, "
            f"{result['assessments']:,} assessments, {result['clients']} clients",
            f"  HTTP    group_by=issue: p50 {http['p50_ms']:.1f} ms, p95 {http['p95_ms']:.1f} ms, "
            f"p99 {http['p99_ms']:.1f} ms, {http['requests_per_s']:.0f} req/s "
            f"({http['completed']:,} requests, errors {http['errors']}"
            f"{', time cap hit' if http['truncated_by_time_cap'] else ''})",
        ]
        for group_by, other in result["http_secondary"].items():
            lines.append(
                f"  HTTP    group_by={group_by}: p50 {other['p50_ms']:.1f} ms, "
                f"p95 {other['p95_ms']:.1f} ms, {other['requests_per_s']:.0f} req/s"
            )
        lines.append(
            f"  raw SQL group_by=issue: p50 {raw['p50_ms']:.1f} ms, p95 {raw['p95_ms']:.1f} ms, "
            f"p99 {raw['p99_ms']:.1f} ms, {raw['requests_per_s']:.0f} req/s"
        )
        for group_by, other in result["raw_sql_secondary"].items():
            lines.append(
                f"  raw SQL group_by={group_by}: p50 {other['p50_ms']:.1f} ms, "
                f"p95 {other['p95_ms']:.1f} ms, {other['requests_per_s']:.0f} req/s"
            )
        lines += [
            f"  HTTP group_by=issue with an assessment every {writes['write_interval_s']} s "
            f"({writes['assessments_recorded']} recorded): p50 {writes['p50_ms']:.1f} ms, "
            f"p95 {writes['p95_ms']:.1f} ms, {writes['requests_per_s']:.0f} req/s (diagnostic)",
            f"  CPU per HTTP request: PostgreSQL {cpu.get('postgres_cpu_ms_per_request')} ms, "
            f"server process {cpu.get('server_cpu_ms_per_request')} ms, "
            f"client {cpu.get('client_cpu_ms_per_request')} ms; foreign load "
            f"{cpu.get('foreign_cpu_share_of_one_core')} core",
            "  " + _goal_text(result),
        ]
        return lines
    if name == "soak":
        memory = result["memory"]
        return [
            f"{name}: {result['load_s']:.0f} s of load, {result['requests']:,} requests "
            f"({result['requests_per_s']:.0f} req/s), {result['status_changes']} status changes, "
            f"{result['catalog_writes']} catalog writes",
            f"  deliveries expected {result['deliveries_expected']}, received "
            f"{result['messages_received']}, lost {result['lost']}, duplicates "
            f"{result['duplicates']}; 5xx {result['server_errors']}; drained in "
            f"{result['drain_s']:.1f} s",
            f"  RSS {memory['rss_start_mib']} -> {memory['rss_end_mib']} MiB, second-half growth "
            f"{memory['second_half_growth_mib']} MiB (allowed "
            f"{memory['allowed_second_half_growth_mib']}): {'flat' if memory['flat'] else 'GREW'}",
            f"  {'PASSED' if result['passed'] else 'FAILED: ' + '; '.join(result['problems'])}",
        ]
    return [f"{name}: {json.dumps(result)[:300]}"]


async def run(names: list[str]) -> dict[str, Any]:
    """Run the named scenarios in order; a failing one is recorded, the others still run."""
    document: dict[str, Any] = {
        "timestamp": utc_timestamp(),
        "machine": await machine_info(),
        "scenarios": {},
    }
    for name in names:
        log(f"{name}: starting")
        load_at_start = [round(x, 2) for x in os.getloadavg()]
        started = time.perf_counter()
        try:
            result = await SCENARIOS[name]()
        except Exception as exc:
            traceback.print_exc()
            result = {"error": repr(exc)}
        result = {"scenario": name, "timestamp": utc_timestamp(), **result}
        result["scenario_wall_s"] = round(time.perf_counter() - started, 1)
        result["load_average_at_start"] = load_at_start
        result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        document["scenarios"][name] = result
        log(f"{name}: done in {result['scenario_wall_s']} s")
    return document


def _dump(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def merge_latest(path: Path, document: dict[str, Any]) -> dict[str, Any]:
    """This run's document, plus the scenarios it did not run as the previous latest.json had
    them (each scenario carries its own timestamp; the top level describes this run)."""
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
        kept = dict(previous.get("scenarios") or {})
    except (OSError, ValueError, AttributeError):
        kept = {}
    fresh = document["scenarios"]
    merged = {name: fresh.get(name, result) for name, result in kept.items()}
    return {**document, "scenarios": {**merged, **fresh}}


def main(argv: list[str] | None = None) -> int:
    """Entry point: run, write the JSON, print the summary; exit 1 if a scenario failed."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    if args.list:
        for name, scenario in SCENARIOS.items():
            print(f"{name}: {(scenario.__doc__ or '').strip()}")
        return 0
    names = args.scenarios or list(SCENARIOS)
    document = asyncio.run(run(names))
    RESULTS.mkdir(parents=True, exist_ok=True)
    latest = merge_latest(RESULTS / "latest.json", document)
    (RESULTS / "latest.json").write_text(_dump(latest), encoding="utf-8")
    stamp = document["timestamp"].replace(":", "").replace("+0000", "Z")
    (RESULTS / f"{stamp}.json").write_text(_dump(document), encoding="utf-8")
    print()
    for name, result in document["scenarios"].items():
        print("\n".join(summary(name, result)))
    print(f"\nwrote {RESULTS / 'latest.json'}")
    failed = [n for n, r in document["scenarios"].items() if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
