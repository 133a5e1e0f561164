"""`upr doctor` against real PostgreSQL, NATS, SMTP and SMS servers: all fine, then not."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from cli.sinks import SmsSink, SmtpSink
from shared.bus import Bus
from tests.cli.conftest import Invoke


@pytest.fixture
def sinks(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SmtpSink, SmsSink]]:
    smtp = SmtpSink().start()
    sms = SmsSink(secret="cli-test-sms-secret-0123456789").start()
    monkeypatch.setenv("UPR_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("UPR_SMTP_PORT", str(smtp.port))
    monkeypatch.setenv("UPR_SMTP_STARTTLS", "never")
    monkeypatch.setenv("UPR_SMS_GATEWAY_URL", f"http://127.0.0.1:{sms.port}/sms")
    yield smtp, sms
    sms.stop()
    smtp.stop()


@pytest.fixture
async def databases(make_database, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    urls = {name: await make_database() for name in ("catalog", "monitoring", "notifications")}
    for name, url in urls.items():
        monkeypatch.setenv(f"UPR_{name.upper()}_DATABASE_URL", url)
    return urls


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_doctor_all_fine_then_problems_in_plain_words(
    databases: dict[str, str],
    sinks: tuple[SmtpSink, SmsSink],
    bus: Bus,
    cli_env: str,
    upr: Invoke,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = await upr("doctor")
    assert before.exit_code == 1
    assert "PROBLEM  catalog database:" in before.stdout and "upr migrate catalog" in before.stdout
    assert "missing consumer(s) monitoring-catalog, notifications" in before.stdout

    assert (await upr("migrate")).exit_code == 0
    for durable in ("monitoring-catalog", "notifications"):  # as the services create them
        await bus.js.add_consumer(bus.stream, durable_name=durable, ack_policy="explicit")

    fine = await upr("doctor")
    assert fine.exit_code == 0, fine.output
    lines = fine.stdout.splitlines()
    assert not [line for line in lines if line.startswith("PROBLEM")]
    for name in ("catalog", "monitoring", "notifications"):
        assert any(line.startswith(f"OK       {name} database: ") for line in lines)
    assert any(line.startswith("OK       JetStream: enabled") for line in lines)
    assert any(line.startswith(f"OK       stream {cli_env.upper()}_DLQ") for line in lines)
    assert any(line.startswith("OK       SMTP: ") for line in lines)
    assert any(line.startswith("OK       SMS gateway: ") for line in lines)
    assert lines[-1] == "Everything looks fine."

    # Break things: NATS gone, a wrong database, a placeholder secret, SMTP down.
    monkeypatch.setenv("UPR_NATS_URL", f"nats://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("UPR_CATALOG_DATABASE_URL", databases["catalog"] + "_missing")
    monkeypatch.setenv("UPR_NOTIFICATIONS_SECRET_KEY", "change-me")
    sinks[0].stop()
    broken = await upr("doctor", "--json")
    assert broken.exit_code == 1
    report = json.loads(broken.stdout)
    problems = {c["name"]: c for c in report["checks"] if not c["ok"]}
    assert report["ok"] is False
    assert set(problems) == {"catalog database", "NATS", "notifications settings", "SMTP"}
    assert "UPR_NOTIFICATIONS_SECRET_KEY" in problems["notifications settings"]["detail"]
    assert "UPR_NATS_URL" in problems["NATS"]["fix"]
    assert "UPR_CATALOG_DATABASE_URL" in problems["catalog database"]["fix"]
    plain = await upr("doctor", "--service", "catalog")
    assert plain.exit_code == 1
    assert "PROBLEM  NATS: cannot reach" in plain.stdout
    assert "1 problem" not in plain.stderr and "problem(s) found" in plain.stderr
