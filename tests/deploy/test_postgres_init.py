"""deploy/postgres/init.sql on a private PostgreSQL server: one role and one database per
service, idempotent, and `upr migrate` (the compose migrate job) works with those roles only."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from cli.nats_server import free_port
from tests.deploy import manifests as m

INIT_SQL = m.REPO / "deploy" / "postgres" / "init.sql"
PASSWORDS = {"catalog": "cat-pw-1", "monitoring": "mon-pw-2", "notifications": "not-pw-3"}


def _tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(candidates[-1]) if candidates else None


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[Path, int]]:
    """A throwaway PostgreSQL (initdb + pg_ctl as the postgres user): its socket dir and port."""
    initdb, pg_ctl, runuser = _tool("initdb"), _tool("pg_ctl"), shutil.which("runuser")
    if not (initdb and pg_ctl and shutil.which("psql")):
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl, psql) are not installed")
    if os.geteuid() == 0:
        if runuser is None:
            pytest.skip("running as root without runuser: initdb refuses root")
        as_postgres = [runuser, "-u", "postgres", "--"]
    else:
        as_postgres = []
    # Directly under /tmp: pytest's own temporary folders are private to root.
    base = Path(tempfile.mkdtemp(prefix="upr-pg-"))
    if as_postgres:
        shutil.chown(base, user="postgres")
    data, port = base / "data", free_port()
    subprocess.run(
        [*as_postgres, initdb, "-D", str(data), "-U", "postgres", "--auth-local=trust",
         "--auth-host=scram-sha-256"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1"
    subprocess.run(
        [*as_postgres, pg_ctl, "-D", str(data), "-o", options, "-l", str(base / "log"), "-w",
         "start"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    try:
        yield base, port
    finally:
        subprocess.run(
            [*as_postgres, pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(base, ignore_errors=True)


def run_init(server: tuple[Path, int], passwords: dict[str, str]) -> subprocess.CompletedProcess:
    """psql -f init.sql as the superuser, with the passwords in its environment."""
    socket_dir, port = server
    env = {k: v for k, v in os.environ.items() if not k.endswith("_DB_PASSWORD")}
    env.update({f"{name.upper()}_DB_PASSWORD": pw for name, pw in passwords.items()})
    return subprocess.run(
        ["psql", "-X", "-q", "-h", str(socket_dir), "-p", str(port), "-U", "postgres",
         "-f", str(INIT_SQL)],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip


def url(port: int, role: str, database: str, password: str) -> str:
    return f"postgresql+asyncpg://{role}:{password}@127.0.0.1:{port}/{database}"


def test_init_refuses_a_missing_password(server: tuple[Path, int]) -> None:
    result = run_init(server, {"catalog": "x", "monitoring": "y"})
    assert result.returncode != 0
    assert "NOTIFICATIONS_DB_PASSWORD is not set" in result.stderr


def test_init_creates_a_role_and_database_per_service_and_migrate_uses_them(
    server: tuple[Path, int], tmp_path: Path
) -> None:
    socket_dir, port = server
    first = run_init(server, PASSWORDS)
    assert first.returncode == 0, first.stderr
    # Idempotent: a second run (an upgrade from an older compose file) changes nothing.
    again = run_init(server, {name: "other" for name in PASSWORDS})
    assert again.returncode == 0, again.stderr

    # The migrate job, as docker compose runs it: production settings, each service's own role.
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPR_")}
    env.update(
        {
            "UPR_ENVIRONMENT": "production",
            "UPR_NOTIFICATIONS_SECRET_KEY": "a-real-secret-for-the-test",
            "UPR_SMS_GATEWAY_SECRET": "another-real-secret-for-the-test",
            "PYTHONPATH": str(m.REPO),
        }
    )
    for service in m.database_services():
        cls = m.settings_classes()[service]
        var = m.env_name("database_url", cls.model_fields["database_url"])
        env[var] = url(port, service, service, PASSWORDS[service])
    migrated = subprocess.run(
        [sys.executable, "-m", "cli.main", "migrate"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=240,
    )
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    for service in m.database_services():
        assert f"{service}: migrated" in migrated.stdout

    async def check() -> None:
        for service, password in PASSWORDS.items():
            conn = await asyncpg.connect(
                host="127.0.0.1", port=port, user=service, password=password, database=service
            )
            try:
                owners = await conn.fetch(
                    "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
                )
                assert [r["tableowner"] for r in owners] == [service]
                assert await conn.fetchval("SELECT version_num FROM alembic_version")
            finally:
                await conn.close()
        # No service may open another service's database.
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await asyncpg.connect(
                host="127.0.0.1",
                port=port,
                user="catalog",
                password=PASSWORDS["catalog"],
                database="notifications",
            )

    asyncio.run(check())
    del socket_dir
