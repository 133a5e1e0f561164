"""The compose files, the image and the NATS configs hold together: healthchecks, start order,
pinned images, a non-root user, package data, configs nats-server accepts."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from cli.nats_server import nats_server_binary
from tests.deploy import manifests as m

DOCKERFILE = m.REPO / "deploy" / "Dockerfile"
NATS_DIR = m.REPO / "deploy" / "nats"
# An exact release: major.minor.patch, or major.minor where that is how the project numbers
# its releases (PostgreSQL 16.10 is a patch release of 16).
PINNED = re.compile(r":v?\d+\.\d+\.\d+(-|$)|^postgres:\d+\.\d+(-|$)")
LONG_RUNNING = ("catalog", "monitoring", "notifications", "web")


def services(*overrides: str) -> dict[str, Any]:
    return m.compose(*overrides)["services"]


def port_of(name: str, spec: dict[str, Any]) -> int:
    """The port a service listens on: its UPR_<NAME>_PORT, else the settings default."""
    cls = m.settings_classes()[name]
    var = m.env_name("port", cls.model_fields["port"])
    value = spec["environment"].get(var)
    return int(value) if value is not None else int(cls.model_fields["port"].default)


# --- docker-compose.yml ---------------------------------------------------------------------


def test_every_third_party_image_is_pinned() -> None:
    for overrides in ((), ("staging",), ("cluster",)):
        for name, spec in services(*overrides).items():
            image = spec.get("image", "")
            if image.startswith(m.IMAGE):
                assert spec["build"]["dockerfile"] == "deploy/Dockerfile", name
                continue
            assert PINNED.search(image), f"{name}: {image} is not pinned to a release"


def test_services_present() -> None:
    found = services()
    assert {"nats", "postgres", "migrate", "catalog", "monitoring", "notifications"} <= set(found)
    if (m.REPO / "services" / "web" / "__main__.py").exists():
        assert "web" in found
    assert found["mailpit"]["profiles"] == ["staging"]


@pytest.mark.parametrize("overrides", [(), ("staging",), ("cluster",)], ids=str)
def test_long_running_services_are_healthchecked_and_restarted(overrides: tuple[str]) -> None:
    for name, spec in services(*overrides).items():
        if name == "migrate":
            assert spec["restart"] == "no"
            continue
        assert spec["restart"] == "unless-stopped", name
        test = spec["healthcheck"]["test"]
        assert test[0] == "CMD", name
        if name in LONG_RUNNING:
            assert test[1:] == ["upr-healthcheck", f"http://127.0.0.1:{port_of(name, spec)}/readyz"]
            published = [p for p in spec["ports"] if p.endswith(f":{port_of(name, spec)}")]
            assert published == [f"127.0.0.1:{port_of(name, spec)}:{port_of(name, spec)}"], name


@pytest.mark.parametrize("overrides", [(), ("staging",), ("cluster",)], ids=str)
def test_start_order_waits_for_health_and_migrations(overrides: tuple[str]) -> None:
    found = services(*overrides)
    nats_nodes = {n for n in found if n == "nats" or n.startswith("nats-")}
    for name, spec in found.items():
        depends = spec.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        for dependency, how in depends.items():
            expected = (
                "service_completed_successfully" if dependency == "migrate" else "service_healthy"
            )
            assert how == {"condition": expected}, f"{name} -> {dependency}"
            assert "healthcheck" in found[dependency] or dependency == "migrate"
        if name in ("catalog", "monitoring", "notifications"):
            assert {"postgres", "migrate"} | nats_nodes <= set(depends), name
        if name == "web":
            assert {"catalog", "monitoring", "notifications"} <= set(depends)
    assert set(found["migrate"]["depends_on"]) == {"postgres"}


def test_the_migrate_job_migrates_every_database() -> None:
    migrate = services()["migrate"]
    assert migrate["command"] == ["upr", "migrate"]
    # Each service logs in with its own role to its own database.
    for service in m.database_services():
        cls = m.settings_classes()[service]
        url = migrate["environment"][m.env_name("database_url", cls.model_fields["database_url"])]
        assert url.startswith(f"postgresql+asyncpg://{service}:${{")
        assert url.endswith(f"@postgres:5432/{service}")


def test_postgres_creates_one_role_per_service() -> None:
    postgres = services()["postgres"]
    init = [v for v in postgres["volumes"] if "docker-entrypoint-initdb.d" in v]
    assert len(init) == 1
    source = init[0].split(":")[0]
    script = (m.REPO / source).read_text()
    for service in m.database_services():
        password = f"{service.upper()}_DB_PASSWORD"
        assert postgres["environment"][password] == f"${{{password}:?set {password} in .env}}"
        assert f"CREATE ROLE {service} LOGIN" in script
        assert f"CREATE DATABASE {service} OWNER {service}" in script
    assert postgres["volumes"][0] == "postgres-data:/var/lib/postgresql/data"


def test_nats_keeps_its_data_and_syncs_every_write() -> None:
    nats = services()["nats"]
    assert "nats-data:/data" in nats["volumes"]
    assert "127.0.0.1:8222:8222" in nats["ports"]
    conf = (NATS_DIR / "nats.conf").read_text()
    assert re.search(r"^\s*sync_interval:\s*always", conf, re.M)
    assert re.search(r"^\s*store_dir:\s*/data", conf, re.M)


def test_monitoring_keeps_evidence_on_a_volume() -> None:
    monitoring = services()["monitoring"]
    upload_dir = monitoring["environment"]["UPR_MONITORING_UPLOAD_DIR"]
    assert f"evidence:{upload_dir}" in monitoring["volumes"]
    assert "evidence" in m.compose()["volumes"]
    # The image creates the folder, so a fresh volume inherits its non-root owner.
    assert upload_dir in DOCKERFILE.read_text()


def test_staging_sends_mail_to_mailpit() -> None:
    found = services("staging")
    env = found["notifications"]["environment"]
    assert env["UPR_SMTP_HOST"] == "mailpit"
    assert env["UPR_SMTP_PORT"] == "1025"
    assert env["UPR_SMTP_STARTTLS"] == "never"
    assert found["notifications"]["depends_on"]["mailpit"] == {"condition": "service_healthy"}
    # Without the override, production settings stay in force.
    assert services()["notifications"]["environment"]["UPR_SMTP_HOST"].startswith("${")


def test_cluster_runs_three_nodes_and_r3_streams() -> None:
    found = services("cluster")
    nodes = {n: s for n, s in found.items() if n == "nats" or n.startswith("nats-")}
    assert len(nodes) == 3
    names = {s["environment"]["NATS_SERVER_NAME"] for s in nodes.values()}
    assert names == {"nats-1", "nats-2", "nats-3"}
    conf = (NATS_DIR / "nats-cluster.conf").read_text()
    routes = set(re.findall(r"nats-route://([a-z0-9-]+):6222", conf))
    reachable = set(nodes) | {
        alias for s in nodes.values() for alias in s["networks"]["default"]["aliases"]
    }
    assert routes == names and routes <= reachable
    for spec in nodes.values():
        assert "./deploy/nats/nats-cluster.conf:/etc/nats/nats.conf:ro" in spec["volumes"]
        assert any(v.endswith(":/data") for v in spec["volumes"])
    # Clients reach any node under the name `nats`.
    assert all(
        "nats" in s["networks"]["default"]["aliases"] for n, s in nodes.items() if n != "nats"
    )
    for workload in m.compose_workloads("cluster"):
        if workload.kind == "service" and workload.services != ["web"]:
            assert workload.env["UPR_NATS_STREAM_REPLICAS"] == "3", workload.where


@pytest.mark.parametrize("conf", ["nats.conf", "nats-cluster.conf"])
def test_nats_server_accepts_the_configs(conf: str) -> None:
    env = {**os.environ, "NATS_SERVER_NAME": "nats-1"}
    result = subprocess.run(
        [nats_server_binary(), "-t", "-c", str(NATS_DIR / conf)],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr


def _compose_cli() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    found = shutil.which("docker-compose")
    return [found] if found else None


@pytest.mark.parametrize("overrides", [(), ("staging",), ("cluster",)], ids=str)
def test_docker_compose_config_accepts_the_files(overrides: tuple[str], tmp_path: Path) -> None:
    """The real Compose CLI resolves the files with .env.example filled in (when installed)."""
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no `docker compose` or `docker-compose` on this machine")
    env_file = tmp_path / ".env"
    lines = []
    for var, value in m.parse_env_file(m.ENV_EXAMPLE).items():
        if value == "":
            lines.append(f"{var}=filled-{var.lower()}")
        elif value is not None:
            lines.append(f"{var}={value}")
    env_file.write_text("\n".join(lines) + "\n")
    files = [m.COMPOSE, *(m.OVERRIDES[o] for o in overrides)]
    args = [*cli, "--env-file", str(env_file), "--project-directory", str(m.REPO)]
    for path in files:
        args += ["-f", str(path)]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("UPR_", "COMPOSE_"))}
    result = subprocess.run(
        [*args, "--profile", "staging", "config", "-q"],
        capture_output=True,
        text=True,
        env=clean,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    # And it refuses to start without the secrets.
    env_file.write_text("")
    refused = subprocess.run(
        [*args, "config", "-q"], capture_output=True, text=True, env=clean, timeout=60
    )
    assert refused.returncode != 0
    assert "UPR_ADMIN_API_KEY" in refused.stderr


# --- the image ------------------------------------------------------------------------------


def dockerfile_stages() -> tuple[dict[str, str], list[list[str]]]:
    """The ARG defaults before the first FROM, and the instructions of each stage."""
    args: dict[str, str] = {}
    stages: list[list[str]] = []
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("FROM "):
            stages.append([line])
        elif stages:
            stages[-1].append(line)
        elif line.startswith("ARG ") and "=" in line:
            name, _, value = line[4:].partition("=")
            args[name] = value
    return args, stages


def test_image_is_multi_stage_on_a_pinned_slim_base() -> None:
    args, stages = dockerfile_stages()
    assert len(stages) >= 2
    for stage in stages:
        base = stage[0].split()[1]
        base = args.get(base.strip("${}"), base) if base.startswith("$") else base
        assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", base), base
    runtime = stages[-1]
    assert any(i.startswith("COPY --from=build /opt/venv") for i in runtime)
    assert not any(re.search(r"apt-get|gcc|build-essential|pip install", i) for i in runtime)


def test_image_runs_as_a_non_root_user() -> None:
    _, stages = dockerfile_stages()
    users = [i.split()[1] for i in stages[-1] if i.startswith("USER ")]
    assert users, "no USER in the runtime stage"
    user, _, group = users[-1].partition(":")
    assert user.isdigit() and int(user) != 0, "use a numeric non-root uid (runAsNonRoot)"
    assert group != "0"


def test_image_entrypoint_and_copied_files_exist() -> None:
    _, stages = dockerfile_stages()
    copies = [i.split()[1] for stage in stages for i in stage if i.startswith("COPY ")]
    sources = [c for c in copies if not c.startswith("--from")]
    ignored = [
        line.strip()
        for line in (m.REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for source in sources:
        assert (m.REPO / source).exists(), source
        assert source not in ignored, f"{source} is in .dockerignore"
    assert 'ENTRYPOINT ["/usr/local/bin/upr-entrypoint"]' in stages[-1]


def _package_data() -> dict[str, list[str]]:
    pyproject = tomllib.loads((m.REPO / "pyproject.toml").read_text())
    return pyproject["tool"]["setuptools"]["package-data"]


def test_package_data_ships_every_non_python_file() -> None:
    """`pip install .` in the image must carry templates, migrations, locales and demo data."""
    patterns = _package_data()
    missing = []
    for path in sorted((m.REPO / "services").rglob("*")):
        if not path.is_file() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
            continue
        covered = False
        for package_dir in path.parents:
            if package_dir == m.REPO:
                break
            package = ".".join(package_dir.relative_to(m.REPO).parts)
            for pattern in [*patterns.get("*", []), *patterns.get(package, [])]:
                if path in package_dir.glob(pattern):
                    covered = True
        if not covered:
            missing.append(str(path.relative_to(m.REPO)))
    assert missing == []


def test_entrypoint_runs_services_by_name_and_commands_as_given(tmp_path: Path) -> None:
    entrypoint = m.REPO / "deploy" / "entrypoint.sh"
    passthrough = subprocess.run(
        ["sh", str(entrypoint), "echo", "upr", "migrate"], capture_output=True, text=True
    )
    assert (passthrough.returncode, passthrough.stdout) == (0, "upr migrate\n")
    usage = subprocess.run(["sh", str(entrypoint)], capture_output=True, text=True)
    assert usage.returncode == 64 and "usage" in usage.stderr
    # A fake `python` on PATH shows what a service name becomes.
    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\necho "python $*"\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    for service in LONG_RUNNING:
        ran = subprocess.run(
            ["sh", str(entrypoint), service], capture_output=True, text=True, env=env
        )
        assert ran.stdout == f"python -m services.{service}\n"
        assert (m.REPO / "services" / service / "__main__.py").exists() or service == "web"


def test_healthcheck_script_follows_the_readiness_answer(tmp_path: Path) -> None:
    """upr-healthcheck exits 0 on a 2xx, 1 on a 503 or a refused connection."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/readyz" else 503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    script = str(m.REPO / "deploy" / "healthcheck.py")

    def probe(url: str) -> int:
        return subprocess.run([sys.executable, script, url], capture_output=True).returncode

    try:
        assert probe(f"http://127.0.0.1:{port}/readyz") == 0
        assert probe(f"http://127.0.0.1:{port}/other") == 1
    finally:
        server.shutdown()
        server.server_close()
    assert probe(f"http://127.0.0.1:{port}/readyz") == 1
