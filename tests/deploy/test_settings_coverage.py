"""Every variable the deployment files pass is a setting the services know, and every setting a
service needs is passed: docker-compose.yml (and its override files), .env.example and the
Kubernetes manifests, checked against the pydantic settings classes."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest

from tests.deploy import manifests as m

DOCS = m.REPO / "docs" / "operations.md"


def compose_problems(workload: m.Workload) -> list[str]:
    """What is wrong with the variables docker compose gives one process."""
    problems = []
    env = workload.env
    for var in sorted(env):
        if not var.startswith("UPR_"):
            problems.append(f"{var} is not a UPR_ setting")
        elif var not in workload.known:
            problems.append(f"{var} is not a setting of {', '.join(workload.services)}")
    for var in sorted(workload.required - set(env)):
        problems.append(f"required {var} is not passed")
    for var in sorted(workload.required & set(env)):
        if env[var] is None:
            problems.append(f"required {var} is only passed through (may be unset)")
    secrets = set().union(*(m.secrets(m.settings_classes()[s]) for s in workload.services))
    for var in sorted(secrets & set(env)):
        value = env[var]
        if value is None:
            continue  # optional: passed only when set in .env
        refs = m.interpolated(value)
        if not refs or any(op != ":?" for _, op, _ in refs):
            problems.append(f"secret {var} must be `${{{var}:?...}}`, not {value!r}")
    for var in sorted(set(env) & m.all_known()):
        for name, op, default in m.interpolated(env[var]):
            if op == ":-" and default and any(x in default for x in m.LOCAL_MARKERS):
                problems.append(f"{var} falls back to a local address ({default})")
            if name.startswith("UPR_") and name != var:
                problems.append(f"{var} is filled from another setting, {name}")
    return problems


def k8s_problems(workload: m.Workload) -> list[str]:
    """What is wrong with the variables a Kubernetes container is given."""
    problems = []
    env = workload.env
    for var in sorted(env):
        if not var.startswith("UPR_"):
            problems.append(f"{var} is not a UPR_ setting")
        elif var not in workload.known:
            problems.append(f"{var} is not a setting of {', '.join(workload.services)}")
    for var in sorted(workload.required - set(env)):
        problems.append(f"required {var} is not passed")
    for var in sorted(workload.required & workload.optional_refs):
        problems.append(f"required {var} comes from an optional secret reference")
    classes = [m.settings_classes()[s] for s in workload.services]
    sensitive = set().union(*(m.secrets(c) for c in classes)) | {
        var for var in env if var.endswith("_DATABASE_URL")
    }
    for var in sorted(sensitive & set(env)):
        if var not in workload.secret_refs:
            problems.append(f"{var} holds a secret but comes from a ConfigMap or a literal")
    secret_keys = m.k8s_secret_keys()
    for var in sorted(workload.secret_refs - workload.optional_refs):
        if secret_keys.get(var) is None:
            problems.append(f"{var} is read from upr-secrets, which secrets.env.example lacks")
    return problems


def common_problems(workload: m.Workload) -> list[str]:
    """Values every deployment must get right."""
    env = workload.env
    problems = []
    environment = str(env.get("UPR_ENVIRONMENT", ""))
    if environment == "dev" or environment.endswith(":-dev}"):
        problems.append("UPR_ENVIRONMENT is dev: placeholder secrets would be accepted")
    if workload.kind == "service":
        if env.get("UPR_HOST") != "0.0.0.0":
            problems.append(f"UPR_HOST is {env.get('UPR_HOST')!r}; a container needs 0.0.0.0")
        if str(env.get("UPR_MIGRATE_ON_START")).lower() != "false":
            problems.append("UPR_MIGRATE_ON_START must be false: the migrate job migrates")
    for var, value in env.items():
        if (
            var.endswith("_DATABASE_URL")
            and value not in (None, "<secret>")
            and not str(value).startswith("postgresql+asyncpg://")
        ):
            problems.append(f"{var} is not a postgresql+asyncpg URL: {value}")
    return problems


COMPOSE_WORKLOADS = [
    *m.compose_workloads(),
    *m.compose_workloads("staging"),
    *m.compose_workloads("cluster"),
]
K8S_WORKLOADS = m.k8s_workloads()


def test_the_settings_classes_are_found() -> None:
    classes = m.settings_classes()
    assert {"catalog", "monitoring", "notifications"} <= set(classes)
    assert m.database_services()[:3] == ["catalog", "monitoring", "notifications"]
    # The placeholder defaults make these required outside dev.
    assert "UPR_NOTIFICATIONS_SECRET_KEY" in m.load_required(classes["notifications"])
    assert "UPR_SMS_GATEWAY_SECRET" in m.load_required(classes["notifications"])
    assert "UPR_CATALOG_DATABASE_URL" in m.container_required("catalog")


def test_every_process_of_the_image_is_covered() -> None:
    compose_names = {w.where.split()[-1] for w in m.compose_workloads()}
    assert {"migrate", "catalog", "monitoring", "notifications"} <= compose_names
    k8s_services = {(w.kind, tuple(w.services)) for w in K8S_WORKLOADS}
    for service in ("catalog", "monitoring", "notifications"):
        assert ("service", (service,)) in k8s_services
        assert ("migrate", (service,)) in k8s_services  # the init containers
    assert ("migrate", tuple(m.database_services())) in k8s_services  # the Job


@pytest.mark.parametrize("workload", COMPOSE_WORKLOADS, ids=lambda w: w.where)
def test_compose_passes_known_and_required_settings(workload: m.Workload) -> None:
    assert compose_problems(workload) + common_problems(workload) == []


@pytest.mark.parametrize("workload", K8S_WORKLOADS, ids=lambda w: w.where)
def test_k8s_passes_known_and_required_settings(workload: m.Workload) -> None:
    assert k8s_problems(workload) + common_problems(workload) == []


def test_the_checks_catch_mistakes() -> None:
    """An unknown variable, a missing required one or a literal secret fails the checks."""
    notifications = next(
        w for w in m.compose_workloads() if w.services == ["notifications"] and w.kind == "service"
    )
    assert compose_problems(notifications) == []

    typo = copy.deepcopy(notifications)
    typo.env["UPR_SMTP_HOSTNAME"] = "mail.example.org"
    assert compose_problems(typo) == ["UPR_SMTP_HOSTNAME is not a setting of notifications"]

    elsewhere = copy.deepcopy(notifications)
    elsewhere.env["UPR_CATALOG_SEED_DEMO"] = "true"
    assert compose_problems(elsewhere) == [
        "UPR_CATALOG_SEED_DEMO is not a setting of notifications"
    ]

    missing = copy.deepcopy(notifications)
    del missing.env["UPR_NOTIFICATIONS_SECRET_KEY"]
    assert compose_problems(missing) == ["required UPR_NOTIFICATIONS_SECRET_KEY is not passed"]

    literal = copy.deepcopy(notifications)
    literal.env["UPR_SMS_GATEWAY_SECRET"] = "hunter2"
    assert compose_problems(literal) == [
        "secret UPR_SMS_GATEWAY_SECRET must be `${UPR_SMS_GATEWAY_SECRET:?...}`, not 'hunter2'"
    ]

    local = copy.deepcopy(notifications)
    local.env["UPR_SMTP_HOST"] = None
    assert compose_problems(local) == [
        "required UPR_SMTP_HOST is only passed through (may be unset)"
    ]

    catalog = next(w for w in K8S_WORKLOADS if w.services == ["catalog"] and w.kind == "service")
    assert k8s_problems(catalog) == []
    exposed = copy.deepcopy(catalog)
    exposed.env["UPR_CATALOG_DATABASE_URL"] = "postgresql+asyncpg://catalog:pw@db/catalog"
    exposed.secret_refs.discard("UPR_CATALOG_DATABASE_URL")
    assert k8s_problems(exposed) == [
        "UPR_CATALOG_DATABASE_URL holds a secret but comes from a ConfigMap or a literal"
    ]
    unknown = copy.deepcopy(catalog)
    unknown.env["UPR_CATALOG_WORKERS"] = "4"
    assert k8s_problems(unknown) == ["UPR_CATALOG_WORKERS is not a setting of catalog"]


# --- .env.example ---------------------------------------------------------------------------


def test_env_example_lists_every_setting_and_nothing_else() -> None:
    listed = m.parse_env_file(m.ENV_EXAMPLE)
    upr = {var for var in listed if var.startswith("UPR_")}
    assert sorted(upr - m.all_known()) == [], "unknown settings in .env.example"
    assert sorted(m.all_known() - upr) == [], "settings missing from .env.example"


def test_env_example_lists_what_compose_reads() -> None:
    listed = m.parse_env_file(m.ENV_EXAMPLE)
    read: set[str] = set()
    for overrides in ((), ("staging",), ("cluster",)):
        read |= m.all_interpolated(m.compose(*overrides))
        for workload in m.compose_workloads(*overrides):
            read |= {var for var, value in workload.env.items() if value is None}
    assert sorted(read - set(listed)) == []


def test_env_example_has_a_line_to_fill_for_each_required_value() -> None:
    """Each ${VAR:?...} of the compose files is an uncommented line of .env.example."""
    listed = m.parse_env_file(m.ENV_EXAMPLE)
    required = set()
    for path in (m.COMPOSE, *m.OVERRIDES.values()):
        required |= {name for name, op in m.interpolations(m.load_yaml(path)) if op == ":?"}
    assert required, "the compose file requires nothing?"
    assert sorted(var for var in required if listed.get(var) is None) == []
    # Secrets are left empty: `docker compose up` refuses to start until they are set.
    secrets = {var for var in required if "PASSWORD" in var or "SECRET" in var or "KEY" in var}
    assert {var: listed[var] for var in secrets} == dict.fromkeys(secrets, "")


def test_env_example_shows_the_real_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A commented-out `# UPR_X=value` says the default: loading it gives the default."""
    monkeypatch.chdir(tmp_path)  # no .env file around
    for var in [v for v in os.environ if v.startswith("UPR_")]:
        monkeypatch.delenv(var)
    set_by_compose = {
        var
        for overrides in ((), ("staging",), ("cluster",))
        for workload in m.compose_workloads(*overrides)
        for var, value in workload.env.items()
        if value is not None
    }
    checked = 0
    for line in m.ENV_EXAMPLE.read_text().splitlines():
        if not line.startswith("# UPR_") or "=" not in line:
            continue
        var, _, value = line[2:].partition("=")
        value = value.split("  #")[0].strip()
        if not value or var in set_by_compose:
            continue
        cls = next(c for c in m.settings_classes().values() if var in m.known(c))
        name, info = m.fields(cls)[var]
        with monkeypatch.context() as env:
            env.setenv(var, value)
            loaded = getattr(cls(), name)
        assert loaded == info.default, f"{var}: .env.example says {value!r}"
        checked += 1
    assert checked > 30


# --- Kubernetes secrets and docs ------------------------------------------------------------


def test_k8s_secret_file_holds_only_known_secret_settings() -> None:
    keys = m.k8s_secret_keys()
    assert sorted(set(keys) - m.all_known()) == []
    for cls in m.settings_classes().values():
        for var in m.load_required(cls):
            assert keys.get(var) is not None, f"{var} missing from secrets.env.example"


def test_operations_guide_documents_every_setting() -> None:
    text = DOCS.read_text()
    assert sorted(var for var in m.all_known() if f"`{var}`" not in text) == []
