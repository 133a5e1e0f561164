"""Soak: the whole stack under mixed reads, writes and status changes with notifications.

The three services run in this process (their ASGI apps behind httpx, lifespans and all) on
PostgreSQL and NATS JetStream; e-mail goes to a real SMTP server (aiosmtpd) and SMS to a real
HTTP gateway, both on loopback. Readers, a catalog writer and a status changer run side by side
for a while; then everything is drained and checked: every status change produced each of its
deliveries exactly once (in the delivery log and at the sinks), no request got a 5xx, and the
process's memory (RSS) stayed flat over the second half of the run.

`run_soak` is shared by the short CI test (tests/soak/test_soak.py) and by the benchmark
scenario `soak` (`python -m bench soak`, a few minutes).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import resource
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

STATUS_CHANGED = "upr.monitoring.status.changed"
# Two statuses a recommendation alternates between, so that every assessment moves it.
STATUS_CYCLE = ("in_progress", "partially_implemented")
DEMO = Path(__file__).resolve().parents[1] / "services/catalog/demo"
DEMO_FILE = DEMO / "cambodia_upr2_2014_recommendations.csv"
MIB = 1024 * 1024


@dataclass
class SoakConfig:
    """How long and how hard to push."""

    duration_s: float = 30.0
    readers: int = 4
    reader_pause_s: float = 0.01
    catalog_writes_per_s: float = 4.0
    status_changes_per_s: float = 2.0
    email_recipients: int = 4
    sms_recipients: int = 2
    drain_timeout_s: float = 90.0
    sample_interval_s: float = 0.5
    # Second-half RSS growth allowed: this much, or this share of the RSS at mid-run.
    rss_growth_tolerance_mib: float = 16.0
    rss_growth_tolerance_share: float = 0.05


@dataclass
class SoakTarget:
    """The running stack: clients on the three services, the sinks and the apps' state."""

    catalog: httpx.AsyncClient
    monitoring: httpx.AsyncClient
    notifications: httpx.AsyncClient
    admin: dict[str, str]
    smtp: Any
    sms: Any

    def app(self, client: httpx.AsyncClient) -> Any:
        return client._transport.app  # type: ignore[attr-defined]


@dataclass
class Tally:
    """What the clients saw."""

    requests: Counter[str] = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    assessments: int = 0
    catalog_writes: int = 0

    async def call(
        self, kind: str, request: Any, *, ok: tuple[int, ...] = (200,)
    ) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response = await request
        except httpx.HTTPError as exc:
            self.unexpected.append(f"{kind}: {exc!r}")
            return None
        self.latencies.setdefault(kind, []).append(time.perf_counter() - started)
        self.requests[kind] += 1
        if response.status_code >= 500:
            self.server_errors.append(f"{kind}: {response.status_code} {response.text[:200]}")
        elif response.status_code not in ok:
            self.unexpected.append(f"{kind}: {response.status_code} {response.text[:200]}")
        return response


def rss_bytes() -> int:
    """The resident set size of this process now (Linux /proc; peak RSS elsewhere)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Received:
    """Drains the sinks as it goes (so they do not grow), counting what arrived per key."""

    def __init__(self, smtp: Any, sms: Any) -> None:
        self.smtp = smtp
        self.sms = sms
        self.emails: Counter[tuple[str, str]] = Counter()  # (event id, address)
        self.sms_by_delivery: Counter[str] = Counter()
        self.sms_to: Counter[str] = Counter()

    def collect(self) -> None:
        with self.smtp._lock:
            mails = self.smtp.received[:]
            self.smtp.received.clear()
        for mail in mails:
            event_id = str(mail.message["X-UPR-Event-ID"])
            for address in mail.recipients:
                self.emails[(event_id, address.lower())] += 1
        with self.sms._lock:
            texts = self.sms.requests[:]
            self.sms.requests.clear()
        for text in texts:
            self.sms_by_delivery[str(text["id"])] += 1
            self.sms_to[text["to"]] += 1

    @property
    def total(self) -> int:
        return sum(self.emails.values()) + sum(self.sms_by_delivery.values())


async def _prepare(target: SoakTarget, config: SoakConfig, tally: Tally) -> dict[str, Any]:
    """Import the demo set, make the recipients and their subscriptions, an assessor key."""
    response = await target.catalog.post(
        "/v1/imports",
        params={"format": "positions-csv"},
        content=DEMO_FILE.read_bytes(),
        headers=target.admin,
    )
    assert response.status_code == 200, response.text
    async with asyncio.timeout(60):
        while True:
            stats = (await target.monitoring.get("/v1/stats", params={"group_by": "cycle"})).json()
            if stats["overall"]["total"] >= 205:
                break
            await asyncio.sleep(0.1)
    listing = (await target.catalog.get("/v1/recommendations", params={"limit": 200})).json()
    recommendations = [item["id"] for item in listing["items"]]
    emails: list[str] = []
    phones: list[str] = []
    for n in range(config.email_recipients):
        body: dict[str, Any] = {
            "name": f"Soak NGO {n}",
            "kind": "ngo",
            "organisation": f"SOAK{n}",
            "email": f"soak.ngo{n}@example.org",
        }
        channels = ["email"]
        if n < config.sms_recipients:
            body["phone"] = f"+8551200{n:04d}"
            channels.append("sms")
            phones.append(body["phone"])
        emails.append(body["email"])
        created = await target.notifications.post("/v1/recipients", json=body, headers=target.admin)
        assert created.status_code == 201, created.text
        subscribed = await target.notifications.post(
            "/v1/subscriptions",
            json={
                "recipient_id": created.json()["id"],
                "filters": {"event_types": [STATUS_CHANGED]},
                "channels": channels,
            },
            headers=target.admin,
        )
        assert subscribed.status_code == 201, subscribed.text
    key = await target.monitoring.post(
        "/v1/keys",
        json={"name": "soak", "role": "assessor", "organisation": "ADHOC"},
        headers=target.admin,
    )
    assert key.status_code == 201, key.text
    return {
        "recommendations": recommendations,
        "emails": emails,
        "phones": phones,
        "assessor": {"Authorization": f"Bearer {key.json()['key']}"},
    }


async def _reader(
    target: SoakTarget, setup: dict[str, Any], config: SoakConfig, tally: Tally, stop: Any
) -> None:
    rng = random.Random()
    recs = setup["recommendations"]
    while not stop.is_set():
        choice = rng.randrange(6)
        rec = rng.choice(recs)
        if choice == 0:
            await tally.call(
                "catalog.list",
                target.catalog.get(
                    "/v1/recommendations", params={"limit": 20, "response": "supported"}
                ),
            )
        elif choice == 1:
            await tally.call("catalog.get", target.catalog.get(f"/v1/recommendations/{rec}"))
        elif choice == 2:
            await tally.call(
                "monitoring.stats",
                target.monitoring.get("/v1/stats", params={"group_by": "issue"}),
            )
        elif choice == 3:
            await tally.call(
                "monitoring.status", target.monitoring.get(f"/v1/recommendations/{rec}/status")
            )
        elif choice == 4:
            await tally.call(
                "notifications.deliveries",
                target.notifications.get(
                    "/v1/deliveries", params={"limit": 50}, headers=target.admin
                ),
            )
        else:
            await tally.call("metrics", target.monitoring.get("/metrics"))
        await asyncio.sleep(rng.uniform(0, 2 * config.reader_pause_s))


async def _paced(rate_per_s: float, stop: asyncio.Event) -> AsyncIterator[int]:
    """Yield at a steady rate until stop is set."""
    interval = 1.0 / rate_per_s
    started = time.perf_counter()
    n = 0
    while not stop.is_set():
        yield n
        n += 1
        delay = started + n * interval - time.perf_counter()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)


async def _catalog_writer(
    target: SoakTarget, setup: dict[str, Any], config: SoakConfig, tally: Tally, stop: Any
) -> None:
    rng = random.Random(7)
    async for _ in _paced(config.catalog_writes_per_s, stop):
        rec = rng.choice(setup["recommendations"])
        goals = sorted(rng.sample(range(1, 18), rng.randint(1, 3)))
        response = await tally.call(
            "catalog.patch",
            target.catalog.patch(
                f"/v1/recommendations/{rec}", json={"sdg_goals": goals}, headers=target.admin
            ),
        )
        if response is not None and response.status_code == 200:
            tally.catalog_writes += 1


async def _status_changer(
    target: SoakTarget, setup: dict[str, Any], config: SoakConfig, tally: Tally, stop: Any
) -> None:
    recs = list(setup["recommendations"])
    random.Random(11).shuffle(recs)
    moves: Counter[str] = Counter()
    async for n in _paced(config.status_changes_per_s, stop):
        rec = recs[n % len(recs)]
        status = STATUS_CYCLE[moves[rec] % 2]
        moves[rec] += 1
        response = await tally.call(
            "monitoring.assess",
            target.monitoring.post(
                f"/v1/recommendations/{rec}/assessments",
                json={"status": status, "assessor_type": "ngo", "summary": f"soak {n}"},
                headers=setup["assessor"],
            ),
            ok=(201,),
        )
        if response is not None and response.status_code == 201:
            tally.assessments += 1


async def _sampler(
    samples: list[tuple[float, int]], received: Received, interval: float, stop: Any
) -> None:
    started = time.perf_counter()
    while not stop.is_set():
        received.collect()
        samples.append((time.perf_counter() - started, rss_bytes()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


def memory_report(samples: list[tuple[float, int]], config: SoakConfig) -> dict[str, Any]:
    """RSS at the quarters of the run; flat if the second half grew within the tolerance."""
    values = [rss for _, rss in samples]
    quarter = max(len(values) // 4, 1)
    q2 = statistics.median(values[quarter : 2 * quarter] or values)
    q4 = statistics.median(values[-quarter:])
    q1 = statistics.median(values[:quarter])
    growth = q4 - q2
    allowed = max(config.rss_growth_tolerance_mib * MIB, config.rss_growth_tolerance_share * q2)
    return {
        "samples": len(values),
        "rss_start_mib": round(values[0] / MIB, 1),
        "rss_first_quarter_median_mib": round(q1 / MIB, 1),
        "rss_second_quarter_median_mib": round(q2 / MIB, 1),
        "rss_last_quarter_median_mib": round(q4 / MIB, 1),
        "rss_end_mib": round(values[-1] / MIB, 1),
        "first_half_growth_mib": round((q2 - q1) / MIB, 1),
        "second_half_growth_mib": round(growth / MIB, 1),
        "allowed_second_half_growth_mib": round(allowed / MIB, 1),
        "flat": growth <= allowed,
    }


async def _delivery_log(target: SoakTarget) -> tuple[list[str], list[tuple[str, str, str, str]]]:
    """The status.changed events monitoring recorded, and notifications' deliveries for them."""
    from services.notifications.models import Delivery
    from shared.outbox import OutboxMessage

    async with target.app(target.monitoring).state.session_factory() as session:
        events = list(
            await session.scalars(
                select(OutboxMessage.event_id).where(OutboxMessage.event_type == STATUS_CHANGED)
            )
        )
    async with target.app(target.notifications).state.session_factory() as session:
        rows = (
            await session.execute(
                select(Delivery.id, Delivery.event_id, Delivery.channel, Delivery.status).where(
                    Delivery.event_type == STATUS_CHANGED
                )
            )
        ).all()
    return events, [tuple(row) for row in rows]  # type: ignore[misc]


async def run_soak(target: SoakTarget, config: SoakConfig) -> dict[str, Any]:
    """Run the soak on a running stack and return its figures and verdicts."""
    tally = Tally()
    setup = await _prepare(target, config, tally)
    received = Received(target.smtp, target.sms)
    received.collect()
    per_event = config.email_recipients + min(config.sms_recipients, config.email_recipients)

    stop = asyncio.Event()
    sampler_stop = asyncio.Event()
    samples: list[tuple[float, int]] = []
    sampler = asyncio.create_task(
        _sampler(samples, received, config.sample_interval_s, sampler_stop)
    )
    workers = [
        asyncio.create_task(_reader(target, setup, config, tally, stop))
        for _ in range(config.readers)
    ]
    workers.append(asyncio.create_task(_catalog_writer(target, setup, config, tally, stop)))
    workers.append(asyncio.create_task(_status_changer(target, setup, config, tally, stop)))
    started = time.perf_counter()
    await asyncio.sleep(config.duration_s)
    stop.set()
    await asyncio.gather(*workers)
    load_s = time.perf_counter() - started
    sampler_stop.set()
    await sampler

    # Drain: wait until every status change has all its deliveries at the sinks.
    drain_started = time.perf_counter()
    events: list[str] = []
    rows: list[tuple[str, str, str, str]] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(config.drain_timeout_s):
            while True:
                received.collect()
                events, rows = await _delivery_log(target)
                if (
                    len(events) >= tally.assessments
                    and received.total >= len(events) * per_event
                    and all(status == "sent" for *_, status in rows)
                    and len(rows) >= len(events) * per_event
                ):
                    break
                await asyncio.sleep(0.25)
    await asyncio.sleep(1.0)  # anything sent twice would arrive now
    received.collect()
    events, rows = await _delivery_log(target)
    drain_s = time.perf_counter() - drain_started

    event_ids = set(events)
    by_event = Counter(event_id for _, event_id, _, _ in rows)
    sms_rows = {
        delivery_id: event_id for delivery_id, event_id, channel, _ in rows if channel == "sms"
    }
    expected_emails = {(e, a.lower()) for e in event_ids for a in setup["emails"]}
    got_emails = set(received.emails)
    expected_sms = len(event_ids) * len(setup["phones"])
    lost_emails = len(expected_emails - got_emails)
    lost_sms = expected_sms - len(set(received.sms_by_delivery) & set(sms_rows))
    duplicates = sum(n - 1 for n in received.emails.values() if n > 1) + sum(
        n - 1 for n in received.sms_by_delivery.values() if n > 1
    )
    stray = len(got_emails - expected_emails) + len(set(received.sms_by_delivery) - set(sms_rows))
    memory = memory_report(samples, config)
    latency = {
        kind: {
            "count": len(values),
            "p50_ms": round(statistics.median(values) * 1000, 1),
            "p95_ms": round(sorted(values)[int(0.95 * (len(values) - 1))] * 1000, 1),
        }
        for kind, values in sorted(tally.latencies.items())
    }
    return {
        "config": {k: v for k, v in config.__dict__.items()},
        "load_s": round(load_s, 1),
        "drain_s": round(drain_s, 1),
        "requests": sum(tally.requests.values()),
        "requests_per_s": round(sum(tally.requests.values()) / load_s, 1),
        "requests_by_kind": dict(sorted(tally.requests.items())),
        "latency": latency,
        "server_errors": len(tally.server_errors),
        "server_error_examples": tally.server_errors[:5],
        "unexpected_responses": len(tally.unexpected),
        "unexpected_examples": tally.unexpected[:5],
        "assessments": tally.assessments,
        "catalog_writes": tally.catalog_writes,
        "status_changes": len(event_ids),
        "deliveries_per_change": per_event,
        "deliveries_expected": len(event_ids) * per_event,
        "deliveries_logged": len(rows),
        "deliveries_not_sent": sum(1 for *_, status in rows if status != "sent"),
        "changes_with_wrong_delivery_count": sum(
            1 for e in event_ids if by_event.get(e, 0) != per_event
        ),
        "messages_received": received.total,
        "lost": lost_emails + max(lost_sms, 0),
        "duplicates": duplicates,
        "stray": stray,
        "memory": memory,
    }


def failures(report: dict[str, Any]) -> list[str]:
    """What the report says went wrong (empty when the soak passed)."""
    problems = []
    if report["server_errors"]:
        problems.append(f"{report['server_errors']} 5xx: {report['server_error_examples']}")
    if report["unexpected_responses"]:
        problems.append(
            f"{report['unexpected_responses']} unexpected: {report['unexpected_examples']}"
        )
    if report["status_changes"] != report["assessments"]:
        problems.append(
            f"{report['assessments']} assessments made {report['status_changes']} status changes"
        )
    for key in ("lost", "duplicates", "stray", "deliveries_not_sent"):
        if report[key]:
            problems.append(f"{key}: {report[key]}")
    if report["changes_with_wrong_delivery_count"]:
        problems.append(
            f"{report['changes_with_wrong_delivery_count']} changes without exactly "
            f"{report['deliveries_per_change']} deliveries"
        )
    if not report["memory"]["flat"]:
        problems.append(f"memory grew: {report['memory']}")
    return problems


# --- the benchmark scenario -----------------------------------------------------------------

BENCH_CONFIG = SoakConfig(
    duration_s=float(os.environ.get("UPR_BENCH_SOAK_SECONDS", "300")),
    readers=8,
    catalog_writes_per_s=10.0,
    status_changes_per_s=5.0,
    email_recipients=6,
    sms_recipients=2,
    drain_timeout_s=300.0,
    sample_interval_s=2.0,
)


@contextlib.asynccontextmanager
async def bench_stack() -> AsyncIterator[SoakTarget]:
    """The three services in this process on scratch databases and a NATS namespace."""
    import secrets

    from bench.support import ADMIN_URL, NATS_URL, nats_namespace, scratch_database
    from cli.sinks import SmsSink, SmtpSink
    from services.catalog.app import create_app as create_catalog
    from services.catalog.settings import CatalogSettings
    from services.monitoring.app import create_app as create_monitoring
    from services.monitoring.settings import MonitoringSettings
    from services.notifications.app import create_app as create_notifications
    from services.notifications.settings import NotificationsSettings

    admin_key = "bench-admin-" + secrets.token_urlsafe(16)
    sms_secret = "bench-sms-secret-" + secrets.token_urlsafe(16)
    smtp = SmtpSink().start()
    sms = SmsSink(secret=sms_secret).start()
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(smtp.stop)
        stack.callback(sms.stop)
        namespace = await stack.enter_async_context(nats_namespace(NATS_URL))
        dbs = [await stack.enter_async_context(scratch_database(ADMIN_URL)) for _ in range(3)]
        common: dict[str, Any] = {
            "environment": "test",
            "nats_url": NATS_URL,
            "nats_namespace": namespace,
            "admin_api_key": admin_key,
            "outbox_poll_interval_s": 0.2,
        }
        upload = Path(await stack.enter_async_context(_tempdir()))
        apps = [
            create_catalog(CatalogSettings(database_url=dbs[0].sqlalchemy_url, **common)),
            create_monitoring(
                MonitoringSettings(database_url=dbs[1].sqlalchemy_url, upload_dir=upload, **common)
            ),
            create_notifications(
                NotificationsSettings(
                    database_url=dbs[2].sqlalchemy_url,
                    smtp_port=smtp.port,
                    smtp_starttls="never",
                    sms_gateway_url=sms.url,
                    sms_gateway_secret=sms_secret,
                    sms_rate_per_s=200.0,
                    secret_key="bench-notifications-secret-" + secrets.token_urlsafe(16),
                    dispatch_interval_s=0.2,
                    **common,
                )
            ),
        ]
        clients = []
        for app in apps:
            await stack.enter_async_context(app.router.lifespan_context(app))
            clients.append(
                await stack.enter_async_context(
                    httpx.AsyncClient(
                        transport=httpx.ASGITransport(app=app), base_url="http://soak", timeout=60
                    )
                )
            )
        yield SoakTarget(
            clients[0],
            clients[1],
            clients[2],
            {"Authorization": f"Bearer {admin_key}"},
            smtp,
            sms,
        )


@contextlib.asynccontextmanager
async def _tempdir() -> AsyncIterator[str]:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="upr-soak-") as folder:
        yield folder


async def soak() -> dict[str, Any]:
    """Whole stack, minutes of mixed reads, writes and status changes: lost, duplicates, RSS."""
    from bench.support import log

    log(f"soak: {BENCH_CONFIG.duration_s:.0f} s of load, then drain")
    async with bench_stack() as target:
        report = await run_soak(target, BENCH_CONFIG)
    report["problems"] = failures(report)
    report["passed"] = not report["problems"]
    return report


SCENARIOS = {"soak": soak}
