"""Notifications scenario: status changes fanned out by e-mail to 20 recipients, end to end.

Catalog, monitoring and notifications each run as a uvicorn child process on PostgreSQL and
NATS JetStream; e-mail goes to an SMTP sink (aiosmtpd) in a process of its own that logs, per
message, its receipt time, its X-UPR-Event-ID and Message-ID headers and its envelope recipient.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import io
import json
import math
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import aiosmtplib
import asyncpg
import httpx

try:
    import greenlet
except ImportError:  # pragma: no cover - SQLAlchemy's asyncio extra installs it
    greenlet = None

from bench.support import (
    ADMIN_URL,
    NATS_URL,
    REPO,
    latency_summary,
    log,
    machine_busy_s,
    nats_namespace,
    postgres_cpu_between,
    postgres_cpu_s,
    process_cpu_s,
    scratch_database,
    with_database,
)
from cli.nats_server import free_port

DEMO = REPO / "services/catalog/demo/cambodia_upr2_2014_recommendations.csv"
EVENT_TYPE = "upr.monitoring.status.changed"
SERVICE_ENV = "UPR_BENCH_NOTIFY_SERVICE"
SINK_ENV = "UPR_BENCH_SMTP_SINK"

RECIPIENTS = 20
ORGANISATIONS = ("ADHOC", "LICADHO", "CCHR", "CHRAC")
# Two statuses a recommendation alternates between, so that every assessment moves it.
STATUS_CYCLE = ("in_progress", "partially_implemented")
WARMUP_CHANGES = 10
STEADY_RATE_PER_S = 10.0
STEADY_SECONDS = 60.0
# How long, after the last steady POST, the e-mails may take to arrive; later ones are censored
# (their latency counts as at least the time waited, so percentiles become lower bounds).
STEADY_DRAIN_CAP_S = 60.0
BURST_CHANGES = 500
BURST_CONCURRENCY = 20
# The burst is cut after this long; its rate is then measured over the window (the pipeline is
# saturated throughout), and what was not delivered yet is reported, not counted as lost.
BURST_TIME_CAP_S = 90.0
BASELINE_MESSAGES = 1_000
BASELINE_RUNS = 3
LATENCY_P99_GOAL_MS = 1_000.0
THROUGHPUT_RATIO_GOAL = 0.5
PROFILE_ENV = "UPR_BENCH_PROFILE_DIR"
# Notifications tuning, through settings only. The rate limit is lifted far above the load
# (its default, 200/s with a burst of 200, is exactly the steady load and would cap the burst);
# dispatch_batch stays at its default of 200; three SMTP sessions (UPR_SMTP_CONNECTIONS) let
# one message's round trips overlap with the next one's.
NOTIFICATIONS_TUNING: dict[str, Any] = {
    "email_rate_per_s": 1_000_000.0,
    "dispatch_batch": 200,
    "smtp_starttls": "never",
    "smtp_connections": 3,
}
# Lines of the services' stderr worth counting (warnings the code logs under load).
LOG_PATTERNS = {
    "consumer_restarts": "restarting after",
    "scheduler_job_skipped_loop_blocked": "maximum number of running instances",
    "deliveries_failed_unexpectedly": "failed unexpectedly",
    "dispatcher_errors": "dispatcher error",
    "outbox_relay_errors": "outbox relay error",
    "handler_retries": "retrying in",
    "nats_disconnects": "nats disconnected",
    "tracebacks": "Traceback",
}


# --- the services as uvicorn child processes ----------------------------------------------------


def serve_service() -> None:
    """Entry point of a service subprocess: uvicorn on one of the three apps.

    With a profile path, a StackSampler runs in the process: SIGUSR1 starts sampling, SIGUSR2
    stops it and writes <path>.<n>.json (n = 1, 2, ...), so a bench can profile one phase.
    """
    import uvicorn

    spec = json.loads(os.environ[SERVICE_ENV])
    name = spec["service"]
    app: Any
    if name == "catalog":
        from services.catalog.app import create_app as create_catalog
        from services.catalog.settings import CatalogSettings

        settings: Any = CatalogSettings(**spec["settings"])
        app = create_catalog(settings)
    elif name == "monitoring":
        from services.monitoring.app import create_app as create_monitoring
        from services.monitoring.settings import MonitoringSettings

        settings = MonitoringSettings(**spec["settings"])
        app = create_monitoring(settings)
    else:
        from services.notifications.app import create_app as create_notifications
        from services.notifications.settings import NotificationsSettings

        settings = NotificationsSettings(**spec["settings"])
        app = create_notifications(settings)
    if spec.get("profile"):
        StackSampler(spec["profile"]).install()
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", access_log=False)


def _walk(frame: Any, stack: list[str]) -> None:
    while frame is not None:
        code = frame.f_code
        stack.append(f"{code.co_filename}:{code.co_firstlineno}:{code.co_name}")
        frame = frame.f_back


class StackSampler:
    """A statistical profiler: the main thread's Python stack every 5 ms of process CPU time.

    setitimer(ITIMER_PROF) sends SIGPROF each time the process has used another interval of
    CPU, and the handler records the stack the main thread is running. Unlike cProfile it costs
    the same whatever the code does (no per-call overhead inflating tiny functions), and time
    spent waiting (the event loop idle, the process descheduled) draws no sample. Time in C
    code (uvloop, asyncpg's protocol) is charged to the Python code that runs right after it.
    """

    def __init__(self, base: str, interval_s: float = 0.005) -> None:
        self.base = base
        self.interval_s = interval_s
        self.stacks: Counter[tuple[str, ...]] = Counter()
        self.dumps = 0

    def install(self) -> None:
        signal.signal(signal.SIGPROF, self._sample)
        signal.signal(signal.SIGUSR1, lambda *_: self.begin())
        signal.signal(signal.SIGUSR2, lambda *_: self.dump())

    def _sample(self, _signum: int, frame: Any) -> None:
        stack: list[str] = []
        _walk(frame, stack)
        # SQLAlchemy's asyncio layer runs the ORM in a greenlet whose frames do not lead back
        # to the coroutine that awaited it: continue with the (suspended) parent greenlets.
        if greenlet is not None:
            parent = greenlet.getcurrent().parent
            while parent is not None:
                _walk(parent.gr_frame, stack)
                parent = parent.parent
        self.stacks[tuple(reversed(stack))] += 1

    def begin(self) -> None:
        self.stacks = Counter()
        signal.setitimer(signal.ITIMER_PROF, self.interval_s, self.interval_s)

    def dump(self) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        self.dumps += 1
        Path(f"{self.base}.{self.dumps}.json").write_text(
            json.dumps([[list(k), n * self.interval_s] for k, n in self.stacks.items()])
        )


def _spawn(
    entry: str, env_name: str, spec: dict[str, Any], log_path: Path | None = None
) -> subprocess.Popen[bytes]:
    """python -c 'from bench.notify import <entry>; <entry>()' with its spec in the environment.

    With a log path, the child's stdout and stderr go to that file.
    """
    output = log_path.open("ab") if log_path is not None else None
    try:
        return subprocess.Popen(
            [sys.executable, "-c", f"from bench.notify import {entry}; {entry}()"],
            cwd=REPO,
            env={**os.environ, env_name: json.dumps(spec)},
            stdout=output,
            stderr=subprocess.STDOUT if output is not None else None,
        )
    finally:
        if output is not None:
            output.close()


@dataclass
class ServiceProcess:
    """One service served by uvicorn in a child process of its own (its own GIL)."""

    service: str
    settings: dict[str, Any]
    log_path: Path
    profile: str | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.settings['port']}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self, timeout: float = 90.0) -> ServiceProcess:
        """Spawn it and wait until /readyz answers 200 (database and NATS reachable)."""
        spec = {"service": self.service, "settings": self.settings, "profile": self.profile}
        self.process = _spawn("serve_service", SERVICE_ENV, spec, self.log_path)
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    tail = self.log_path.read_text(errors="replace")[-2000:]
                    raise RuntimeError(
                        f"{self.service} exited with {self.process.returncode}: {tail}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/readyz")).status_code == 200:
                        return self
                await asyncio.sleep(0.2)
        raise TimeoutError(f"{self.service} not ready on {self.base_url} within {timeout}s")

    def warnings(self) -> dict[str, Any]:
        """Counts of notable lines in what the service logged, with a few examples."""
        if not self.log_path.exists():
            return {}
        lines = self.log_path.read_text(errors="replace").splitlines()
        counts = {k: sum(1 for line in lines if v in line) for k, v in LOG_PATTERNS.items()}
        examples = list(dict.fromkeys(line[:200] for line in lines if line.strip()))[:8]
        return {"lines": len(lines), **{k: v for k, v in counts.items() if v}, "examples": examples}

    def send(self, number: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(number)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (uvicorn runs the lifespan shutdown), SIGKILL if it hangs."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


# --- the SMTP sink, in a process of its own -----------------------------------------------------

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_EVENT_ID = re.compile(rb"^X-UPR-Event-ID:[ \t]*(\S+)", re.MULTILINE | re.IGNORECASE)
_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(\S+)", re.MULTILINE | re.IGNORECASE)


class _SinkRecorder:
    """aiosmtpd handler: one TSV line per (message, recipient), written when DATA ends."""

    def __init__(self, out: io.TextIOBase, sample: Path) -> None:
        self.out = out
        self.sample = sample
        self.sampled = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        received = time.time()
        content: bytes = envelope.original_content or envelope.content
        end = _HEADER_END.search(content)
        head = content[: end.start()] if end else content
        event = _EVENT_ID.search(head)
        message_id = _MESSAGE_ID.search(head)
        event_text = event.group(1).decode() if event else "-"
        message_text = message_id.group(1).decode() if message_id else "-"
        for rcpt in envelope.rcpt_tos:
            self.out.write(
                f"{received:.6f}\t{event_text}\t{message_text}\t{rcpt}\t{len(content)}\n"
            )
        if not self.sampled and event is not None:
            self.sample.write_bytes(content)
            self.sampled = True
        return "250 OK"


def sink_main() -> None:
    """Entry point of the sink subprocess (uvloop when installed)."""
    spec = json.loads(os.environ[SINK_ENV])
    loop_factory = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_serve_sink(spec["port"], Path(spec["folder"])))


async def _serve_sink(port: int, folder: Path) -> None:
    from aiosmtpd.smtp import SMTP

    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGINT, stopping.set)
    with (folder / "sink.tsv").open("a", encoding="utf-8", buffering=1 << 20) as out:
        recorder = _SinkRecorder(out, folder / "sample.eml")
        server = await loop.create_server(
            lambda: SMTP(recorder, hostname="bench-sink", ident="UPR bench sink"),
            "127.0.0.1",
            port,
        )
        (folder / "sink.ready").write_text(str(os.getpid()))
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), 0.05)
            out.flush()
        server.close()
        out.flush()


@dataclass
class Receipt:
    t: float
    event_id: str
    message_id: str
    rcpt: str
    size: int


@dataclass
class SmtpSinkProcess:
    """Starts the sink, reads its log incrementally, stops it."""

    folder: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    receipts: list[Receipt] = field(default_factory=list)
    _offset: int = 0
    _partial: bytes = b""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self, timeout: float = 30.0) -> SmtpSinkProcess:
        spec = {"port": self.port, "folder": str(self.folder)}
        self.process = _spawn("sink_main", SINK_ENV, spec)
        deadline = time.monotonic() + timeout
        while not (self.folder / "sink.ready").exists():
            if self.process.poll() is not None:
                raise RuntimeError(f"SMTP sink exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError("the SMTP sink did not start")
            await asyncio.sleep(0.05)
        return self

    def poll(self) -> int:
        """Read what the sink logged since the last call; return the total count."""
        path = self.folder / "sink.tsv"
        if not path.exists():
            return len(self.receipts)
        with path.open("rb") as f:
            f.seek(self._offset)
            chunk = f.read()
        self._offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            t, event_id, message_id, rcpt, size = line.decode().split("\t")
            self.receipts.append(Receipt(float(t), event_id, message_id, rcpt, int(size)))
        return len(self.receipts)

    def sample(self) -> bytes:
        return (self.folder / "sample.eml").read_bytes()

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


# --- CPU accounting across the processes --------------------------------------------------------


def _nats_cpu_s() -> dict[int, float]:
    """CPU seconds of every nats-server process on the machine (read only)."""
    found: dict[int, float] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if (proc / "comm").read_text().strip() == "nats-server":
                    found[int(proc.name)] = process_cpu_s(int(proc.name))
    return found


@dataclass
class StackCpu:
    """CPU used over a span by each process of the stack, PostgreSQL, NATS and the machine."""

    pids: dict[str, int]

    def snapshot(self) -> dict[str, Any]:
        snap: dict[str, Any] = {
            "wall": time.perf_counter(),
            "bench": time.process_time(),
            "postgres": postgres_cpu_s(),
            "nats": _nats_cpu_s(),
            "machine": machine_busy_s(),
        }
        for name, pid in self.pids.items():
            with contextlib.suppress(OSError):
                snap[name] = process_cpu_s(pid)
        return snap

    def between(self, a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
        """Shares of one core (1.0 = one core busy the whole span)."""
        wall = max(b["wall"] - a["wall"], 1e-9)
        shares = {"bench_process": (b["bench"] - a["bench"]) / wall}
        for name in self.pids:
            if name in a and name in b:
                shares[name] = (b[name] - a[name]) / wall
        shares["postgres_all"] = postgres_cpu_between(a["postgres"], b["postgres"]) / wall
        shares["nats_server_all"] = (
            sum(v - a["nats"][pid] for pid, v in b["nats"].items() if pid in a["nats"]) / wall
        )
        busy = b["machine"][0] - a["machine"][0]
        total = max(b["machine"][1] - a["machine"][1], 1e-9)
        cores = os.cpu_count() or 1
        machine = busy / total
        out = {f"{k}_cpu_share_of_one_core": round(v, 3) for k, v in shares.items()}
        out["machine_cpu_busy_fraction"] = round(machine, 3)
        out["foreign_cpu_share_of_one_core"] = round(
            max(machine * cores - sum(shares.values()), 0.0), 3
        )
        out["wall_s"] = round(wall, 2)
        return out


class CommitProbe:
    """A one-row INSERT committed every 0.25 s on its own connection and scratch table.

    It shares nothing with the services but the PostgreSQL server, so slow commits here mean
    the server (or the machine) stalled, whatever the services were doing.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples: list[tuple[float, float]] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        conn = await asyncpg.connect(self.url)
        await conn.execute("CREATE TABLE IF NOT EXISTS bench_commit_probe (t timestamptz)")
        self._task = asyncio.create_task(self._run(conn))

    async def _run(self, conn: asyncpg.Connection) -> None:
        try:
            while True:
                t0 = time.time()
                await conn.execute("INSERT INTO bench_commit_probe VALUES (now())")
                self.samples.append((t0, time.time() - t0))
                await asyncio.sleep(0.25)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(conn.close())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def between(self, start: float, end: float) -> dict[str, Any]:
        """Commit latency over a span, and when (seconds after start) it took over 0.5 s."""
        inside = [(t, d) for t, d in self.samples if start <= t <= end]
        return {
            "commits": len(inside),
            **_ms([d for _, d in inside]),
            "slow_over_500ms_at_s": [round(t - start, 1) for t, d in inside if d > 0.5][:30],
        }


# --- driving status changes through monitoring --------------------------------------------------


@dataclass
class Change:
    """One assessment POST meant to move a recommendation's consolidated status."""

    phase: str
    rec: str
    status: str
    scheduled: float = math.nan
    t_send: float = math.nan
    t_done: float = math.nan
    http_status: int = 0
    assessment_id: str | None = None
    error: str | None = None


class Changer:
    """Posts assessments round-robin over the recommendations, alternating their status.

    Each recommendation's POSTs run one at a time (a lock per recommendation), in the order
    they were planned, so each one moves the consolidated status away from the previous one.
    """

    def __init__(
        self, client: httpx.AsyncClient, keys: list[dict[str, str]], current: dict[str, str]
    ) -> None:
        self.client = client
        self.keys = keys
        self.order = sorted(current)
        self.planned = dict(current)
        self.locks = {rec: asyncio.Lock() for rec in current}
        self.count = 0
        self.changes: list[Change] = []

    def plan(self, phase: str) -> Change:
        rec = self.order[self.count % len(self.order)]
        status = STATUS_CYCLE[0] if self.planned[rec] != STATUS_CYCLE[0] else STATUS_CYCLE[1]
        self.planned[rec] = status
        self.count += 1
        change = Change(phase, rec, status)
        self.changes.append(change)
        return change

    async def send(self, change: Change, key: dict[str, str]) -> Change:
        async with self.locks[change.rec]:
            change.t_send = time.time()
            try:
                response = await self.client.post(
                    f"/v1/recommendations/{change.rec}/assessments",
                    json={"status": change.status, "assessor_type": "ngo"},
                    headers=key,
                )
                change.t_done = time.time()
                change.http_status = response.status_code
                if response.status_code == 201:
                    change.assessment_id = response.json()["id"]
                else:
                    change.error = response.text[:300]
            except httpx.HTTPError as exc:
                change.t_done = time.time()
                change.error = repr(exc)
        return change

    def key(self) -> dict[str, str]:
        return self.keys[self.count % len(self.keys)]


async def open_loop(changer: Changer, phase: str, rate: float, seconds: float) -> list[Change]:
    """rate POSTs per second for seconds, each sent on schedule whatever the others do."""
    count = int(rate * seconds)
    start = time.time() + 0.05
    tasks = []
    for i in range(count):
        delay = start + i / rate - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        key = changer.key()
        change = changer.plan(phase)
        change.scheduled = start + i / rate
        tasks.append(asyncio.create_task(changer.send(change, key)))
    return list(await asyncio.gather(*tasks))


async def burst(changer: Changer, phase: str, count: int, concurrency: int) -> list[Change]:
    """count POSTs as fast as concurrency clients can send them."""
    gate = asyncio.Semaphore(concurrency)

    async def one(change: Change, key: dict[str, str]) -> Change:
        async with gate:
            return await changer.send(change, key)

    planned = []
    for _ in range(count):
        key = changer.key()
        planned.append((changer.plan(phase), key))
    return list(await asyncio.gather(*(one(c, k) for c, k in planned)))


# --- reading what the services recorded ---------------------------------------------------------


@dataclass
class EventRecord:
    """A status.changed event, as monitoring wrote it and notifications handled it."""

    event_id: str
    assessment_id: str | None
    written: float
    published: float | None
    consumed: float | None = None
    deliveries: list[tuple[str, str, float, float | None]] = field(default_factory=list)


async def read_events(monitoring_url: str, notifications_url: str) -> dict[str, EventRecord]:
    """status.changed events by assessment id, with notifications' inbox and delivery rows."""
    events: dict[str, EventRecord] = {}
    conn = await asyncpg.connect(monitoring_url)
    try:
        rows = await conn.fetch(
            "SELECT event_id, envelope->'data'->>'assessment_id' AS assessment_id, "
            "created_at, published_at FROM outbox WHERE event_type = $1",
            EVENT_TYPE,
        )
    finally:
        await conn.close()
    by_event = {}
    for row in rows:
        record = EventRecord(
            row["event_id"],
            row["assessment_id"],
            row["created_at"].timestamp(),
            row["published_at"].timestamp() if row["published_at"] else None,
        )
        by_event[record.event_id] = record
        events[record.assessment_id or record.event_id] = record
    conn = await asyncpg.connect(notifications_url)
    try:
        for row in await conn.fetch(
            "SELECT event_id, processed_at FROM inbox WHERE event_type = $1", EVENT_TYPE
        ):
            if row["event_id"] in by_event:
                by_event[row["event_id"]].consumed = row["processed_at"].timestamp()
        for row in await conn.fetch(
            "SELECT event_id, recipient_id, status, created_at, sent_at FROM deliveries "
            "WHERE event_type = $1",
            EVENT_TYPE,
        ):
            if row["event_id"] in by_event:
                by_event[row["event_id"]].deliveries.append(
                    (
                        row["recipient_id"],
                        row["status"],
                        row["created_at"].timestamp(),
                        row["sent_at"].timestamp() if row["sent_at"] else None,
                    )
                )
    finally:
        await conn.close()
    return events


async def delivery_log(notifications_url: str) -> dict[str, Any]:
    """Counts of the notifications delivery table and its outbox (DeliverySent events)."""
    conn = await asyncpg.connect(notifications_url)
    try:
        statuses = {
            f"{r['status']}": r["n"]
            for r in await conn.fetch(
                "SELECT status, count(*) AS n FROM deliveries GROUP BY status ORDER BY status"
            )
        }
        retried = await conn.fetchval("SELECT count(*) FROM deliveries WHERE attempts > 1")
        outbox = await conn.fetchrow(
            "SELECT count(*) AS total, count(*) FILTER (WHERE published_at IS NULL) AS unpublished "
            "FROM outbox"
        )
    finally:
        await conn.close()
    return {
        "deliveries_by_status": statuses,
        "deliveries_attempted_more_than_once": retried,
        "outbox_events": outbox["total"],
        "outbox_unpublished": outbox["unpublished"],
    }


async def backlog(monitoring_url: str, notifications_url: str) -> dict[str, int]:
    """What is still in flight: status.changed events not yet handled, deliveries not yet sent."""
    conn = await asyncpg.connect(monitoring_url)
    try:
        written = await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE event_type = $1", EVENT_TYPE
        )
    finally:
        await conn.close()
    conn = await asyncpg.connect(notifications_url)
    try:
        handled = await conn.fetchval(
            "SELECT count(*) FROM inbox WHERE event_type = $1", EVENT_TYPE
        )
        pending = await conn.fetchval("SELECT count(*) FROM deliveries WHERE status = 'pending'")
    finally:
        await conn.close()
    return {"events_not_yet_handled": written - handled, "deliveries_pending": pending}


# --- figures ------------------------------------------------------------------------------------


def _ms(values: list[float]) -> dict[str, float]:
    return latency_summary(values)


def _receipts_of(sink: SmtpSinkProcess, event_ids: set[str]) -> dict[str, list[Receipt]]:
    by_event: dict[str, list[Receipt]] = defaultdict(list)
    for receipt in sink.receipts:
        if receipt.event_id in event_ids:
            by_event[receipt.event_id].append(receipt)
    return by_event


async def wait_for_receipts(
    sink: SmtpSinkProcess, event_ids: set[str], expected: int, deadline: float
) -> bool:
    """Until the sink has expected messages for these events (True) or the deadline (False)."""
    while True:
        sink.poll()
        got = sum(1 for r in sink.receipts if r.event_id in event_ids)
        if got >= expected:
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)


def _pairs(
    changes: list[Change], events: dict[str, EventRecord]
) -> list[tuple[Change, EventRecord]]:
    """Each POST with the status.changed event it caused (matched by the assessment id)."""
    return [
        (c, events[c.assessment_id])
        for c in changes
        if c.assessment_id is not None and c.assessment_id in events
    ]


def _http_figures(changes: list[Change]) -> dict[str, Any]:
    ok = [c for c in changes if c.http_status == 201]
    return {
        "requests": len(changes),
        "created_201": len(ok),
        "errors": len(changes) - len(ok),
        "first_error": next((c.error for c in changes if c.error), None),
        **_ms([c.t_done - c.t_send for c in ok]),
    }


STAGES = (
    "http_response",
    "event_written_in_monitoring",
    "event_published_to_nats",
    "event_handled_by_notifications",
    "first_email_received",
    "last_email_received",
    "last_delivery_marked_sent",
)


def _stages(
    pairs: list[tuple[Change, EventRecord]], receipts: dict[str, list[Receipt]]
) -> dict[str, dict[str, float]]:
    """Per event, milliseconds from the POST's send time to each step along the way."""
    stages: dict[str, list[float]] = defaultdict(list)
    for change, event in pairs:
        t0 = change.t_send
        stages["http_response"].append(change.t_done - t0)
        stages["event_written_in_monitoring"].append(event.written - t0)
        if event.published is not None:
            stages["event_published_to_nats"].append(event.published - t0)
        if event.consumed is not None:
            stages["event_handled_by_notifications"].append(event.consumed - t0)
        got = receipts.get(event.event_id, [])
        if got:
            stages["first_email_received"].append(min(r.t for r in got) - t0)
            stages["last_email_received"].append(max(r.t for r in got) - t0)
        sent = [d[3] for d in event.deliveries if d[3] is not None]
        if sent:
            stages["last_delivery_marked_sent"].append(max(sent) - t0)
    return {name: _ms(stages[name]) for name in STAGES if stages[name]}


def _per_second(times: list[float], start: float) -> list[int]:
    if not times:
        return []
    buckets = Counter(int(t - start) for t in times if t >= start)
    return [buckets.get(s, 0) for s in range(max(buckets, default=-1) + 1)]


def _by_bucket(
    pairs: list[tuple[Change, EventRecord]],
    receipts: dict[str, list[Receipt]],
    cut: float,
    width: float,
) -> list[float | None]:
    """The median e-mail latency (ms) of the POSTs sent in each successive span of width s.

    A median growing span after span is a queue building up: the load exceeds what the
    pipeline sustains. E-mails not received by cut count as received at cut.
    """
    if not pairs:
        return []
    start = min(c.t_send for c, _ in pairs)
    buckets: dict[int, list[float]] = defaultdict(list)
    for change, event in pairs:
        got = sorted(r.t for r in receipts.get(event.event_id, []))
        got += [cut] * max(RECIPIENTS - len(got), 0)
        buckets[int((change.t_send - start) // width)].extend(t - change.t_send for t in got)
    return [
        round(statistics.median(buckets[b]) * 1000, 1) if buckets.get(b) else None
        for b in range(max(buckets) + 1)
    ]


def latency_figures(
    changes: list[Change],
    events: dict[str, EventRecord],
    sink: SmtpSinkProcess,
    cut: float,
) -> dict[str, Any]:
    """Per e-mail latency (receipt - POST send); e-mails not received by cut are censored."""
    sink.poll()
    pairs = _pairs(changes, events)
    receipts = _receipts_of(sink, {e.event_id for _, e in pairs})
    per_email: list[float] = []
    all_recipients: list[float] = []
    censored = 0
    for change, event in pairs:
        got = receipts.get(event.event_id, [])
        per_email.extend(r.t - change.t_send for r in got)
        missing = max(RECIPIENTS - len({r.rcpt for r in got}), 0)
        censored += missing
        per_email.extend([cut - change.t_send] * missing)
        last = max((r.t for r in got), default=cut) if not missing else cut
        all_recipients.append(last - change.t_send)
    lag = [c.t_send - c.scheduled for c in changes if not math.isnan(c.scheduled)]
    return {
        "status_changes_sent": len(changes),
        "status_changed_events": len(pairs),
        "emails_expected": len(pairs) * RECIPIENTS,
        "emails_received": len(per_email) - censored,
        "emails_censored": censored,
        "complete": censored == 0 and len(pairs) == len(changes),
        "percentiles_are_lower_bounds": censored > 0,
        **_ms(per_email),
        "all_recipients_of_an_event": _ms(all_recipients),
        "p50_ms_by_10s_of_sending": _by_bucket(pairs, receipts, cut, 10.0),
        "stages_ms_since_post": _stages(pairs, receipts),
        "emails_received_per_s_since_first_post": _per_second(
            sorted(r.t for got in receipts.values() for r in got),
            min(c.t_send for c in changes),
        ),
        "http": _http_figures(changes),
        "send_schedule_lag_ms_max": round(max(lag) * 1000, 1) if lag else None,
    }


def throughput_figures(
    changes: list[Change],
    events: dict[str, EventRecord],
    sink: SmtpSinkProcess,
    complete: bool,
    cut: float,
) -> dict[str, Any]:
    """Deliveries per second from the burst's first request to its last receipt (or the cut)."""
    sink.poll()
    pairs = _pairs(changes, events)
    receipts = _receipts_of(sink, {e.event_id for _, e in pairs})
    start = min(c.t_send for c in changes)
    times = sorted(r.t for got in receipts.values() for r in got)
    end = times[-1] if complete and times else cut
    seconds = max(end - start, 1e-9)
    # Every e-mail the sink received in the window, the burst's or an earlier phase's backlog.
    window = [
        r.t for r in sink.receipts if start <= r.t <= end and not r.event_id.startswith("baseline-")
    ]
    handled = sorted(e.consumed for _, e in pairs if e.consumed is not None)
    published = sorted(e.published for _, e in pairs if e.published is not None)
    routed = sorted(d[2] for _, e in pairs for d in e.deliveries)
    sent = sorted(d[3] for _, e in pairs for d in e.deliveries if d[3] is not None)

    def since(values: list[float]) -> float | None:
        return round(values[-1] - start, 2) if values else None

    return {
        "status_changes_sent": len(changes),
        "status_changed_events": len(pairs),
        "emails_expected": len(pairs) * RECIPIENTS,
        "emails_received": len(times),
        "complete": complete,
        "truncated_by_time_cap": not complete,
        "window_s": round(seconds, 2),
        "deliveries_per_s": round(len(window) / seconds, 1),
        "burst_emails_per_s": round(len(times) / seconds, 1),
        "completion_s_since_first_request": {
            "last_post_answered": round(max(c.t_done for c in changes) - start, 2),
            "last_event_published": since(published),
            "last_event_handled_by_notifications": since(handled),
            "last_delivery_row_created": since(routed),
            "first_email_received": round(times[0] - start, 2) if times else None,
            "last_email_received": since(times),
            "last_delivery_marked_sent": since(sent),
        },
        "rates_per_s": {
            "posts_answered": round(len(changes) / (max(c.t_done for c in changes) - start), 1),
            "events_handled_by_notifications": round(len(handled) / (handled[-1] - start), 1)
            if handled
            else None,
        },
        "timeline_per_s": {
            "posts_answered": _per_second([c.t_done for c in changes], start),
            "events_handled_by_notifications": _per_second(handled, start),
            "emails_received_all_phases": _per_second(window, start),
        },
        "stages_ms_since_post": _stages(pairs, receipts),
        "http": _http_figures(changes),
    }


def exactly_once(
    changes: list[Change],
    events: dict[str, EventRecord],
    sink: SmtpSinkProcess,
    addresses: dict[str, str],
) -> dict[str, Any]:
    """Count per (event, recipient) over the whole run, checked against the delivery rows.

    lost: a delivery the service marked sent (or an event it handled without a delivery row
    for a subscriber) whose e-mail the sink never got. not_yet_delivered: still pending when
    the run ended (a burst cut by its time cap), or the event not handled yet.
    """
    sink.poll()
    pairs = _pairs(changes, events)
    counts = Counter(
        (r.event_id, r.rcpt) for r in sink.receipts if not r.event_id.startswith("baseline-")
    )
    expected = {(e.event_id, a) for _, e in pairs for a in addresses.values()}
    rows = {(e.event_id, addresses.get(d[0], d[0])): d[1] for _, e in pairs for d in e.deliveries}
    handled = {e.event_id for _, e in pairs if e.consumed is not None}
    duplicates = {pair: n for pair, n in counts.items() if n > 1}
    unexpected = set(counts) - expected
    missing = expected - set(counts)
    lost = {
        pair
        for pair in missing
        if rows.get(pair) == "sent" or (pair[0] in handled and pair not in rows)
    }
    failed = {pair for pair in missing if rows.get(pair) == "failed"}
    no_event = [c for c in changes if c.http_status == 201 and c.assessment_id not in events]
    message_ids = Counter(
        r.message_id for r in sink.receipts if not r.event_id.startswith("baseline-")
    )
    every = not duplicates and not unexpected and not missing and not no_event
    return {
        "status_changes_posted": len(changes),
        "posts_without_status_changed_event": len(no_event),
        "pairs_expected": len(expected),
        "pairs_received": len(set(counts) & expected),
        "emails_received": sum(counts.values()),
        "duplicates": len(duplicates),
        "duplicate_examples": [f"{e} -> {a} x{n}" for (e, a), n in list(duplicates.items())[:5]],
        "unexpected": len(unexpected),
        "repeated_message_ids": sum(1 for n in message_ids.values() if n > 1),
        "lost": len(lost),
        "failed": len(failed),
        "not_yet_delivered_at_end": len(missing - lost - failed),
        "every_message_arrived_exactly_once": every,
        "no_duplicate_and_no_loss": not duplicates and not unexpected and not lost and not failed,
    }


def _short(where: str) -> str:
    for marker in ("site-packages/", f"{REPO}/", "python3.11/"):
        if marker in where:
            return where.split(marker, 1)[1]
    return where


def profile_summary(path: Path, top: int = 25) -> dict[str, Any]:
    """A StackSampler dump reduced to where the CPU went: by area, by function, hot stacks.

    cpu_s is samples x the sampling interval: an estimate of the main thread's CPU time.
    """
    stacks = [(tuple(frames), cpu) for frames, cpu in json.loads(path.read_text())]
    total = sum(cpu for _, cpu in stacks) or 1e-9
    areas: Counter[str] = Counter()
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, cpu in stacks:
        if not frames:
            continue
        areas[_area(frames[-1])] += cpu
        own[_short(frames[-1])] += cpu
        for frame in set(frames):
            inclusive[_short(frame)] += cpu

    def share(counter: Counter[str], only: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        rows = [(k, v) for k, v in counter.most_common() if not only or k.startswith(only)]
        return [
            {"function": k, "cpu_s": round(v, 2), "share": round(v / total, 3)}
            for k, v in rows[:top]
        ]

    hot = Counter({";".join(_short(f).rsplit(":", 1)[-1] for f in k[-8:]): v for k, v in stacks})
    return {
        "sampled_cpu_s": round(total, 2),
        "cpu_share_by_area": {k: round(v / total, 3) for k, v in areas.most_common()},
        "top_self": share(own),
        "top_inclusive_in_services_and_shared": share(inclusive, ("services/", "shared/")),
        "top_inclusive_all": share(inclusive),
        "hot_stacks_last_8_frames": [
            {"stack": k, "share": round(v / total, 3)} for k, v in hot.most_common(15)
        ],
    }


_AREAS = (
    ("services/notifications/deliveries", "notifications dispatcher (deliveries.py)"),
    ("services/notifications/channels", "notifications channels.py"),
    ("services/notifications/rendering", "notifications rendering.py"),
    ("services/notifications/templates", "jinja2 templates"),
    ("services/notifications/", "notifications (other modules)"),
    ("/shared/", "shared (bus, inbox, outbox, db)"),
    ("sqlalchemy", "sqlalchemy"),
    ("asyncpg", "asyncpg"),
    ("aiosmtplib", "aiosmtplib"),
    ("/email/", "stdlib email (build and flatten messages)"),
    ("jinja2", "jinja2"),
    ("markupsafe", "jinja2"),
    ("pydantic", "pydantic"),
    ("/nats/", "nats-py"),
    ("asyncio", "asyncio / uvloop"),
    ("uvloop", "asyncio / uvloop"),
    ("apscheduler", "apscheduler"),
    ("uvicorn", "uvicorn/starlette/fastapi"),
    ("starlette", "uvicorn/starlette/fastapi"),
    ("fastapi", "uvicorn/starlette/fastapi"),
)


def _area(frame: str) -> str:
    for marker, area in _AREAS:
        if marker in frame:
            return area
    return "other Python"


# --- the raw SMTP baseline ----------------------------------------------------------------------


async def smtp_baseline(port: int, sample: bytes, runs: int, count: int) -> dict[str, Any]:
    """aiosmtplib over one reused connection: a real e-mail resent count times per run."""
    message = message_from_bytes(sample, policy=default_policy)
    sender = "alerts@upr-tracker.local"
    rcpt = "baseline@example.org"
    results = []

    async def run_once(label: str, send: Callable[[aiosmtplib.SMTP, int], Awaitable[Any]]) -> dict:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=10)
        await client.connect()
        try:
            cpu0, start = time.process_time(), time.perf_counter()
            for n in range(count):
                await send(client, n)
            seconds = time.perf_counter() - start
            cpu = time.process_time() - cpu0
        finally:
            await client.quit()
        return {
            "variant": label,
            "messages": count,
            "seconds": round(seconds, 3),
            "messages_per_s": round(count / seconds, 1),
            "client_cpu_ms_per_message": round(cpu * 1000 / count, 3),
        }

    for run in range(1, runs + 1):

        async def send_message(client: aiosmtplib.SMTP, n: int, run: int = run) -> Any:
            message.replace_header("Message-ID", f"<baseline-{run}-{n}@bench>")
            message.replace_header("X-UPR-Event-ID", f"baseline-{run}-{n}")
            return await client.send_message(message, sender=sender, recipients=[rcpt])

        results.append(await run_once("send_message", send_message))
    raw = sample.replace(b"X-UPR-Event-ID:", b"X-UPR-Event-ID: baseline-raw X-Was:", 1)

    async def sendmail(client: aiosmtplib.SMTP, n: int) -> Any:
        return await client.sendmail(sender, [rcpt], raw)

    raw_run = await run_once("sendmail of the same bytes (no message flattening)", sendmail)
    median = sorted(results, key=lambda r: r["messages_per_s"])[(len(results) - 1) // 2]
    return {
        "description": "aiosmtplib.SMTP in the bench process, one connection reused, "
        "send_message of a real status.changed e-mail (Message-ID and X-UPR-Event-ID changed "
        "each time), one after the other, to the same sink process; median of runs",
        "message_bytes": len(sample),
        "messages_per_s": median["messages_per_s"],
        "runs": results,
        "diagnostic_sendmail_prebuilt_bytes": raw_run,
    }


def code_fingerprint() -> dict[str, Any]:
    """Which code the services ran: others edit it while benchmarks run, so say which state."""
    files = sorted(
        f
        for folder in ("services/notifications", "shared")
        for f in (REPO / folder).rglob("*")
        if f.is_file() and "__pycache__" not in f.parts
    )
    digest = hashlib.sha256()
    for f in files:
        digest.update(str(f.relative_to(REPO)).encode() + b"\0" + f.read_bytes())
    newest = max(files, key=lambda f: f.stat().st_mtime)
    found: dict[str, Any] = {
        "sha256_of_services_notifications_and_shared": digest.hexdigest()[:16],
        "newest_file": str(newest.relative_to(REPO)),
        "newest_mtime_utc": dt.datetime.fromtimestamp(newest.stat().st_mtime, dt.UTC).isoformat(
            timespec="seconds"
        ),
    }
    channels = (REPO / "services/notifications/channels.py").read_text()
    deliveries = (REPO / "services/notifications/deliveries.py").read_text()
    pool = re.search(r"class EmailChannel\b.*?def __init__\(([^)]*)\)", channels, re.DOTALL)
    semaphore = re.search(r"self\.concurrency = asyncio\.Semaphore\(([^)]*)\)", deliveries)
    found["email_channel_init"] = " ".join(pool.group(1).split()) if pool else None
    found["dispatcher_semaphore"] = semaphore.group(1) if semaphore else None
    return found


# --- the scenario -------------------------------------------------------------------------------


@dataclass
class Stack:
    """The three services, the sink, the clients and what the run has sent so far."""

    sink: SmtpSinkProcess
    services: dict[str, ServiceProcess]
    monitoring_db: str
    notifications_db: str
    admin: dict[str, str]
    monitoring: httpx.AsyncClient
    notifications: httpx.AsyncClient
    catalog: httpx.AsyncClient
    addresses: dict[str, str] = field(default_factory=dict)
    changer: Changer | None = None
    cpu: StackCpu | None = None
    probe: CommitProbe | None = None

    async def events(self) -> dict[str, EventRecord]:
        return await read_events(self.monitoring_db, self.notifications_db)

    async def settle(
        self, phase: str, changes: list[Change], deadline: float
    ) -> tuple[dict[str, EventRecord], bool, float]:
        """Wait until every e-mail of these changes arrived or the deadline passed."""
        events = await self.events()
        ids = {e.event_id for _, e in _pairs(changes, events)}
        done = await wait_for_receipts(self.sink, ids, len(ids) * RECIPIENTS, deadline)
        cut = time.time()
        if not done:
            log(f"notify_fanout: {phase}: cut by its time cap before every e-mail arrived")
        return await self.events(), done, cut

    def profile(self, start: bool) -> None:
        if self.services["notifications"].profile:
            self.services["notifications"].send(signal.SIGUSR1 if start else signal.SIGUSR2)


async def notify_fanout(profile_dir: Path | None = None) -> dict[str, Any]:
    """Status changes to 20 e-mail recipients end to end: latency at 10/s, burst throughput."""
    if profile_dir is None and os.environ.get(PROFILE_ENV):
        profile_dir = Path(os.environ[PROFILE_ENV])
    async with contextlib.AsyncExitStack() as stack:
        namespace = await stack.enter_async_context(nats_namespace())
        dbs = {
            name: await stack.enter_async_context(scratch_database())
            for name in ("catalog", "monitoring", "notifications")
        }
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="upr-notify-")))
        code = code_fingerprint()
        run = await start_stack(stack, namespace, dbs, folder, profile_dir)
        result = await measure(run)
        result["service_logs"] = {name: s.warnings() for name, s in run.services.items()}
        result["code"] = code
    return result


async def start_stack(
    stack: contextlib.AsyncExitStack,
    namespace: str,
    dbs: dict[str, Any],
    folder: Path,
    profile_dir: Path | None,
) -> Stack:
    """Sink, three services, the demo imported, keys, recipients and subscriptions."""
    sink = await SmtpSinkProcess(folder).start()
    stack.callback(sink.stop)
    admin_key = "bench-admin-" + secrets.token_urlsafe(16)
    common = {
        "environment": "test",
        "admin_api_key": admin_key,
        "nats_url": NATS_URL,
        "nats_namespace": namespace,
        "host": "127.0.0.1",
        "log_level": "WARNING",
    }
    profile = None
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
        profile = str(profile_dir / f"notifications-{int(time.time())}")
    settings = {
        "catalog": {**common, "database_url": dbs["catalog"].sqlalchemy_url},
        "monitoring": {
            **common,
            "database_url": dbs["monitoring"].sqlalchemy_url,
            "upload_dir": str(folder / "evidence"),
        },
        "notifications": {
            **common,
            "database_url": dbs["notifications"].sqlalchemy_url,
            "smtp_host": "127.0.0.1",
            "smtp_port": sink.port,
            "secret_key": "bench-notifications-" + secrets.token_urlsafe(16),
            "sms_gateway_secret": "bench-sms-" + secrets.token_urlsafe(16),
            **NOTIFICATIONS_TUNING,
        },
    }
    services = {
        name: ServiceProcess(
            name,
            {**options, "port": free_port()},
            folder / f"{name}.log",
            profile if name == "notifications" else None,
        )
        for name, options in settings.items()
    }
    for service in services.values():
        stack.callback(service.stop)
    started = time.perf_counter()
    await asyncio.gather(*(s.start() for s in services.values()))
    log(f"notify_fanout: services up in {time.perf_counter() - started:.1f}s")

    def client(name: str) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        return httpx.AsyncClient(base_url=services[name].base_url, timeout=60, limits=limits)

    run = Stack(
        sink=sink,
        services=services,
        monitoring_db=with_database(ADMIN_URL, dbs["monitoring"].name),
        notifications_db=with_database(ADMIN_URL, dbs["notifications"].name),
        admin={"Authorization": f"Bearer {admin_key}"},
        catalog=await stack.enter_async_context(client("catalog")),
        monitoring=await stack.enter_async_context(client("monitoring")),
        notifications=await stack.enter_async_context(client("notifications")),
    )

    # The Cambodia demo into the catalog, until monitoring tracks every recommendation.
    imported = await run.catalog.post(
        "/v1/imports",
        params={"format": "positions-csv"},
        content=DEMO.read_bytes(),
        headers=run.admin,
    )
    imported.raise_for_status()
    created = imported.json()["created"]
    deadline = time.monotonic() + 60
    while True:
        conn = await asyncpg.connect(run.monitoring_db)
        try:
            current = {
                r["id"]: r["status"]
                for r in await conn.fetch("SELECT id, status FROM recommendations")
            }
        finally:
            await conn.close()
        if len(current) >= created:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"monitoring tracks {len(current)} of {created} recommendations")
        await asyncio.sleep(0.2)

    # Assessor keys on monitoring; recipients each subscribed to status.changed by e-mail.
    keys = []
    for organisation in ORGANISATIONS:
        response = await run.monitoring.post(
            "/v1/keys",
            json={"name": organisation, "role": "assessor", "organisation": organisation},
            headers=run.admin,
        )
        response.raise_for_status()
        keys.append({"Authorization": f"Bearer {response.json()['key']}"})
    for n in range(RECIPIENTS):
        email = f"ngo{n:02d}@example.org"
        response = await run.notifications.post(
            "/v1/recipients",
            json={"name": f"NGO {n}", "kind": "ngo", "email": email, "builtin_routing": False},
            headers=run.admin,
        )
        response.raise_for_status()
        recipient = response.json()
        run.addresses[recipient["id"]] = email
        response = await run.notifications.post(
            "/v1/subscriptions",
            json={
                "recipient_id": recipient["id"],
                "channels": ["email"],
                "filters": {"event_types": [EVENT_TYPE]},
            },
            headers=run.admin,
        )
        response.raise_for_status()
    run.probe = CommitProbe(with_database(ADMIN_URL, dbs["catalog"].name))
    await run.probe.start()
    stack.push_async_callback(run.probe.stop)
    run.changer = Changer(run.monitoring, keys, current)
    run.cpu = StackCpu({name: s.pid for name, s in services.items()} | {"smtp_sink": sink.pid})
    log(
        f"notify_fanout: {len(current)} recommendations, {RECIPIENTS} recipients, "
        f"set up in {time.perf_counter() - started:.1f}s"
    )
    return run


def _cpu_per_email(cpu: dict[str, float], emails: int) -> dict[str, float]:
    """Milliseconds of CPU per e-mail received, by process, over a span."""
    if not emails:
        return {}
    wall = cpu["wall_s"]
    return {
        key.replace("_cpu_share_of_one_core", "_ms"): round(value * wall * 1000 / emails, 2)
        for key, value in cpu.items()
        if key.endswith("_cpu_share_of_one_core")
    }


async def measure(run: Stack) -> dict[str, Any]:
    """Warm-up, steady load, raw SMTP baseline, burst; then the exactly-once check."""
    assert run.changer is not None and run.cpu is not None and run.probe is not None
    changer, cpu, probe = run.changer, run.cpu, run.probe

    # Warm-up (not measured): a few changes, every e-mail received.
    warm = await open_loop(changer, "warmup", 5.0, WARMUP_CHANGES / 5.0)
    await run.settle("warmup", warm, time.monotonic() + 30)

    # Latency at steady load.
    log(
        f"notify_fanout: steady load, {STEADY_RATE_PER_S:g} status changes/s for "
        f"{STEADY_SECONDS:g}s, {RECIPIENTS} recipients each"
    )
    run.profile(start=True)
    cpu0 = cpu.snapshot()
    steady = await open_loop(changer, "steady", STEADY_RATE_PER_S, STEADY_SECONDS)
    cpu_posted = cpu.snapshot()
    events, _, cut = await run.settle("steady", steady, time.monotonic() + STEADY_DRAIN_CAP_S)
    cpu1 = cpu.snapshot()
    run.profile(start=False)
    latency = latency_figures(steady, events, run.sink, cut)
    latency["cpu_while_posting"] = cpu.between(cpu0, cpu_posted)
    latency["cpu_until_drained"] = cpu.between(cpu0, cpu1)
    latency["cpu_ms_per_email_received"] = _cpu_per_email(
        latency["cpu_until_drained"], latency["emails_received"]
    )
    latency["postgres_commit_probe"] = probe.between(min(c.t_send for c in steady), cut)
    bound = "≥ " if latency["percentiles_are_lower_bounds"] else ""
    log(
        f"notify_fanout: steady p50 {bound}{latency.get('p50_ms')} ms, p99 {bound}"
        f"{latency.get('p99_ms')} ms ({latency['emails_received']:,} of "
        f"{latency['emails_expected']:,} e-mails)"
    )

    # The raw SMTP baseline, with the stack up (idle unless the steady phase left a backlog).
    baseline_backlog = await backlog(run.monitoring_db, run.notifications_db)
    base_cpu0 = cpu.snapshot()
    baseline = await smtp_baseline(
        run.sink.port, run.sink.sample(), BASELINE_RUNS, BASELINE_MESSAGES
    )
    baseline["cpu"] = cpu.between(base_cpu0, cpu.snapshot())
    baseline["notifications_backlog_at_start"] = baseline_backlog
    log(f"notify_fanout: raw aiosmtplib baseline {baseline['messages_per_s']:,.0f} messages/s")

    # Throughput at saturation.
    burst_backlog = await backlog(run.monitoring_db, run.notifications_db)
    log(
        f"notify_fanout: burst of {BURST_CHANGES} status changes x {RECIPIENTS} recipients "
        f"(backlog: {burst_backlog})"
    )
    run.profile(start=True)
    cpu2 = cpu.snapshot()
    started = time.monotonic()
    burst_changes = await burst(changer, "burst", BURST_CHANGES, BURST_CONCURRENCY)
    cpu_burst_posted = cpu.snapshot()
    events, done, cut = await run.settle("burst", burst_changes, started + BURST_TIME_CAP_S)
    cpu3 = cpu.snapshot()
    run.profile(start=False)
    throughput = throughput_figures(burst_changes, events, run.sink, done, cut)
    throughput["notifications_backlog_at_start"] = burst_backlog
    throughput["cpu_while_posting"] = cpu.between(cpu2, cpu_burst_posted)
    throughput["cpu_until_drained_or_cut"] = cpu.between(cpu2, cpu3)
    window_emails = round(throughput["deliveries_per_s"] * throughput["window_s"])
    throughput["cpu_ms_per_email_received"] = _cpu_per_email(
        throughput["cpu_until_drained_or_cut"], window_emails
    )
    rate = throughput["deliveries_per_s"]
    ratio = rate / baseline["messages_per_s"] if baseline["messages_per_s"] else 0.0
    throughput["ratio_to_baseline"] = round(ratio, 3)
    throughput["postgres_commit_probe"] = probe.between(min(c.t_send for c in burst_changes), cut)
    log(f"notify_fanout: burst {rate:,.0f} e-mails/s, ratio to the baseline {ratio:.3f}")

    # Exactly once over every status change of the run, after a short quiet period.
    await asyncio.sleep(2.0)
    once = exactly_once(changer.changes, await run.events(), run.sink, run.addresses)
    log_counts = await delivery_log(run.notifications_db)

    profile = None
    if run.services["notifications"].profile:
        await asyncio.sleep(1.0)
        base = run.services["notifications"].profile
        profile = {
            phase: {"file": f"{base}.{n}.json", **profile_summary(Path(f"{base}.{n}.json"))}
            for n, phase in ((1, "steady"), (2, "burst"))
            if Path(f"{base}.{n}.json").exists()
        }

    p99 = latency.get("p99_ms", math.inf)
    latency_met = bool(p99 <= LATENCY_P99_GOAL_MS and latency["complete"])
    throughput_met = bool(ratio >= THROUGHPUT_RATIO_GOAL)
    result: dict[str, Any] = {
        "description": "catalog, monitoring and notifications each a uvicorn child process "
        "(PostgreSQL scratch databases, one NATS namespace); the Cambodia demo imported; "
        f"{RECIPIENTS} recipients subscribed to {EVENT_TYPE} by e-mail; assessment POSTs on "
        "monitoring, each moving a recommendation's consolidated status; e-mail to an aiosmtpd "
        "sink in its own process. An e-mail's latency = its receipt by the sink - the POST's "
        "send time, matched through its X-UPR-Event-ID header (the status.changed event id; "
        "the event's assessment_id, read from monitoring's outbox, is the POSTed assessment's).",
        "recommendations": len(changer.order),
        "recipients": RECIPIENTS,
        "p50_ms": latency.get("p50_ms"),
        "p95_ms": latency.get("p95_ms"),
        "p99_ms": latency.get("p99_ms"),
        "latency_percentiles_are_lower_bounds": latency["percentiles_are_lower_bounds"],
        "deliveries_per_s": rate,
        "smtp_baseline_messages_per_s": baseline["messages_per_s"],
        "ratio": round(ratio, 3),
        "every_message_arrived_exactly_once": once["every_message_arrived_exactly_once"],
        "no_duplicate_and_no_loss": once["no_duplicate_and_no_loss"],
        "goal": {
            "p99_ms_at_most": LATENCY_P99_GOAL_MS,
            "ratio_at_least": THROUGHPUT_RATIO_GOAL,
            "latency_met": latency_met,
            "throughput_met": throughput_met,
            "met": latency_met and throughput_met,
        },
        "latency": latency,
        "throughput": throughput,
        "smtp_baseline": baseline,
        "exactly_once": once,
        "notifications_tables_at_end": log_counts,
        "settings": {
            "notifications": NOTIFICATIONS_TUNING,
            "not_settings": "how many sends the Dispatcher runs at once is fixed in the code: "
            "see code.dispatcher_semaphore",
            "steady_rate_per_s": STEADY_RATE_PER_S,
            "steady_seconds": STEADY_SECONDS,
            "steady_drain_cap_s": STEADY_DRAIN_CAP_S,
            "burst_changes": BURST_CHANGES,
            "burst_post_concurrency": BURST_CONCURRENCY,
            "burst_time_cap_s": BURST_TIME_CAP_S,
            "assessor_keys": len(ORGANISATIONS),
            "statuses_alternated": list(STATUS_CYCLE),
        },
    }
    if profile is not None:
        result["notifications_profile"] = profile
    return result


SCENARIOS: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = {
    "notify_fanout": notify_fanout,
}
