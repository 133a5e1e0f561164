"""Benchmark plumbing: scratch databases, NATS namespaces, a real catalog server, statistics."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import secrets
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import asyncpg
import httpx
import nats
from nats.js.errors import NotFoundError
from sqlalchemy.ext.asyncio import AsyncEngine

from cli.nats_server import free_port
from services.catalog.app import MIGRATIONS
from shared import migrate
from shared.db import create_engine

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
LEGACY_CSV = SHARED_DATA / "upr_info_legacy_2014.csv"
RESULTS = Path(__file__).resolve().parent / "results"

ADMIN_URL = os.environ.get(
    "UPR_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
NATS_URL = os.environ.get("UPR_BENCH_NATS_URL", "nats://127.0.0.1:4222")
SETTINGS_ENV = "UPR_BENCH_CATALOG_SETTINGS"


def log(message: str) -> None:
    """Print a progress line to stderr (the summary goes to stdout)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def legacy_csv() -> Path:
    """The UPR Info legacy file beside the repository, or a clear error."""
    if not LEGACY_CSV.exists():
        raise FileNotFoundError(f"{LEGACY_CSV} is missing: the benchmarks read ../shared/data")
    return LEGACY_CSV


# --- PostgreSQL ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScratchDatabase:
    """A throwaway database: its name, a plain asyncpg URL and the SQLAlchemy URL."""

    name: str
    url: str

    @property
    def sqlalchemy_url(self) -> str:
        return self.url.replace("postgresql://", "postgresql+asyncpg://", 1)


def with_database(admin_url: str, name: str) -> str:
    """The admin URL pointed at another database."""
    return urlparse(admin_url)._replace(path=f"/{name}").geturl()


@contextlib.asynccontextmanager
async def scratch_database(admin_url: str = ADMIN_URL) -> AsyncIterator[ScratchDatabase]:
    """Create an empty, uniquely named database and drop it (forcefully) afterwards."""
    name = f"upr_bench_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield ScratchDatabase(name, with_database(admin_url, name))
    finally:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def migrated_engine(db: ScratchDatabase) -> AsyncEngine:
    """An engine on the scratch database with the catalog's Alembic migrations applied."""
    engine = create_engine(db.sqlalchemy_url)
    await migrate.upgrade(engine, MIGRATIONS)
    return engine


async def postgres_version(admin_url: str = ADMIN_URL) -> str:
    """The server's version string."""
    conn = await asyncpg.connect(admin_url)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


# --- NATS ---------------------------------------------------------------------------------------


def new_namespace() -> str:
    """A namespace of this run's own: stream B<hex>, subjects b<hex>.>"""
    return "b" + uuid.uuid4().hex[:12]


@contextlib.asynccontextmanager
async def nats_namespace(nats_url: str = NATS_URL) -> AsyncIterator[str]:
    """A unique NATS namespace whose streams are deleted afterwards."""
    namespace = new_namespace()
    try:
        yield namespace
    finally:
        try:
            nc = await nats.connect(nats_url, connect_timeout=2, allow_reconnect=False)
        except Exception as exc:
            log(f"could not reach NATS to delete the {namespace} streams: {exc!r}")
        else:
            js = nc.jetstream()
            for stream in (namespace.upper(), f"{namespace.upper()}_DLQ"):
                with contextlib.suppress(NotFoundError):
                    await js.delete_stream(stream)
            await nc.close()


# --- the catalog as a real uvicorn server -------------------------------------------------------


def serve_catalog() -> None:
    """Entry point of the server subprocess: uvicorn on create_app(CatalogSettings(...))."""
    import uvicorn

    from services.catalog.app import create_app
    from services.catalog.settings import CatalogSettings

    options = json.loads(os.environ[SETTINGS_ENV])
    settings = CatalogSettings(**options)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
    )


@dataclass
class CatalogServer:
    """The catalog served by uvicorn in a child process (so it has its own interpreter and GIL)."""

    database_url: str
    namespace: str
    nats_url: str = NATS_URL
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self, timeout: float = 60.0) -> CatalogServer:
        """Start the server and wait until /readyz answers 200."""
        self.port = self.port or free_port()
        options = {
            "environment": "test",
            "admin_api_key": "bench-admin-" + secrets.token_urlsafe(16),
            "database_url": self.database_url,
            "nats_url": self.nats_url,
            "nats_namespace": self.namespace,
            "host": "127.0.0.1",
            "port": self.port,
            "log_level": "WARNING",
        }
        self.process = self._spawn(options)
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"catalog server exited with {self.process.returncode}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/readyz")).status_code == 200:
                        return self
                await asyncio.sleep(0.1)
        self.stop()
        raise TimeoutError(f"catalog server not ready on {self.base_url} within {timeout}s")

    @staticmethod
    def _spawn(options: dict[str, Any]) -> subprocess.Popen[bytes]:
        env = {**os.environ, SETTINGS_ENV: json.dumps(options)}
        return subprocess.Popen(
            [sys.executable, "-c", "from bench.support import serve_catalog; serve_catalog()"],
            cwd=REPO,
            env=env,
        )

    def stop(self, timeout: float = 15.0) -> None:
        """Stop gracefully (SIGTERM runs the lifespan shutdown), kill if it hangs."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@contextlib.asynccontextmanager
async def catalog_server(database_url: str, namespace: str) -> AsyncIterator[CatalogServer]:
    """A running catalog server on a free port, stopped afterwards."""
    server = CatalogServer(database_url=database_url, namespace=namespace)
    await server.start()
    try:
        yield server
    finally:
        server.stop()


# --- CPU accounting -----------------------------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_s(pid: int, *, reaped_children: bool = False) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc).

    With reaped_children, add what its exited and waited-for children used (cutime, cstime).
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / _TICKS


def machine_busy_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, summed over cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / _TICKS, total / _TICKS


def postgres_cpu_s() -> dict[int, float]:
    """CPU seconds so far of every PostgreSQL process on this machine, by pid.

    Each includes its reaped children, so the postmaster's figure grows by the whole lifetime
    of every backend or parallel worker that exits (see postgres_cpu_between).
    """
    found: dict[int, float] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            if (proc / "comm").read_text().strip() == "postgres":
                found[int(proc.name)] = process_cpu_s(int(proc.name), reaped_children=True)
    return found


def postgres_cpu_between(start: dict[int, float], end: dict[int, float]) -> float:
    """CPU seconds PostgreSQL used between two snapshots, short-lived backends included.

    A process gone by the end was reaped by the postmaster, whose children time then holds its
    whole lifetime: what it had used before the start is taken off again.
    """
    grown = sum(cpu - start.get(pid, 0.0) for pid, cpu in end.items())
    return grown - sum(cpu for pid, cpu in start.items() if pid not in end)


@dataclass
class CpuMeter:
    """CPU used over a span by this process, the server, PostgreSQL, and the whole machine.

    PostgreSQL is every postgres process (other databases' too); whatever the machine spent
    beyond client, server and PostgreSQL is foreign load that disturbed the measurement.
    """

    pid: int | None = None

    def __post_init__(self) -> None:
        self._wall = time.perf_counter()
        self._own = time.process_time()
        self._child = process_cpu_s(self.pid) if self.pid else 0.0
        self._postgres = postgres_cpu_s()
        self._busy, self._total = machine_busy_s()

    def read(self) -> dict[str, float]:
        """Shares of one core (1.0 = one core busy the whole span) and the machine's load."""
        wall = time.perf_counter() - self._wall
        busy, total = machine_busy_s()
        cores = os.cpu_count() or 1
        machine = (busy - self._busy) / max(total - self._total, 1e-9)
        client = (time.process_time() - self._own) / wall
        postgres = postgres_cpu_between(self._postgres, postgres_cpu_s()) / wall
        server = (process_cpu_s(self.pid) - self._child) / wall if self.pid else 0.0
        out = {
            "client_cpu_share_of_one_core": round(client, 3),
            "postgres_cpu_share_of_one_core": round(postgres, 3),
            "machine_cpu_busy_fraction": round(machine, 3),
            "foreign_cpu_share_of_one_core": round(
                max(machine * cores - client - server - postgres, 0.0), 3
            ),
        }
        if self.pid:
            out["server_cpu_share_of_one_core"] = round(server, 3)
        return out


# --- statistics and machine info ----------------------------------------------------------------


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(fraction * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def latency_summary(seconds: Iterable[float]) -> dict[str, float]:
    """p50/p95/p99/mean/max in milliseconds."""
    values = sorted(seconds)
    if not values:
        return {}
    return {
        "p50_ms": round(percentile(values, 0.50) * 1000, 2),
        "p95_ms": round(percentile(values, 0.95) * 1000, 2),
        "p99_ms": round(percentile(values, 0.99) * 1000, 2),
        "mean_ms": round(statistics.fmean(values) * 1000, 2),
        "max_ms": round(values[-1] * 1000, 2),
    }


def median_by(runs: Sequence[dict[str, Any]], key: str) -> dict[str, Any]:
    """The run whose value of key is the median (the lower middle one for an even count)."""
    ordered = sorted(runs, key=lambda run: run[key])
    return ordered[(len(ordered) - 1) // 2]


def _git_commit() -> str | None:
    """The checked-out commit, read from .git without running git."""
    git = REPO / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = head[5:]
        if (git / ref).exists():
            return (git / ref).read_text().strip()
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0]
    except OSError:
        return None
    return None


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    return None


async def machine_info() -> dict[str, Any]:
    """What the figures were measured on."""
    packages = {}
    for name in ("fastapi", "uvicorn", "sqlalchemy", "asyncpg", "pydantic", "httpx", "uvloop"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            packages[name] = metadata.version(name)
    try:
        pg: str | None = await postgres_version()
    except Exception as exc:
        pg = f"unreachable: {exc!r}"
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "postgres": pg,
        "postgres_url": ADMIN_URL,
        "nats_url": NATS_URL,
        "packages": packages,
        "git_commit": _git_commit(),
    }


def utc_timestamp() -> str:
    """Now, ISO 8601 in UTC."""
    return datetime.now(UTC).isoformat(timespec="seconds")
