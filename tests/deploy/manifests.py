"""What the deployment files pass to each process, and what the settings classes expect."""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr
from pydantic.fields import FieldInfo

from shared.settings import PLACEHOLDER_SECRETS, BaseServiceSettings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
OVERRIDES = {
    "staging": REPO / "docker-compose.staging.yml",
    "cluster": REPO / "docker-compose.cluster.yml",
}
ENV_EXAMPLE = REPO / ".env.example"
K8S = REPO / "deploy" / "k8s"
IMAGE = "upr-tracker"
LOCAL_MARKERS = ("127.0.0.1", "localhost", "sqlite")


# --- the settings ----------------------------------------------------------------------------


def env_name(name: str, info: FieldInfo) -> str:
    """The environment variable a settings field is read from (its alias, else UPR_ + name)."""
    alias = info.validation_alias
    return alias if isinstance(alias, str) else f"UPR_{name.upper()}"


def settings_classes() -> dict[str, type[BaseServiceSettings]]:
    """Each service (a package under services/ with settings.py) and its settings class."""
    found: dict[str, type[BaseServiceSettings]] = {}
    for path in sorted((REPO / "services").glob("*/settings.py")):
        module = importlib.import_module(f"services.{path.parent.name}.settings")
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseServiceSettings)
                and value is not BaseServiceSettings
                and value.__module__ == module.__name__
            ):
                found[path.parent.name] = value
    return found


def fields(cls: type[BaseServiceSettings]) -> dict[str, tuple[str, FieldInfo]]:
    """Environment variable -> (field name, field) of a settings class."""
    return {env_name(name, info): (name, info) for name, info in cls.model_fields.items()}


def known(cls: type[BaseServiceSettings]) -> set[str]:
    """The variables a settings class reads."""
    return set(fields(cls))


def all_known() -> set[str]:
    """Every variable some service reads."""
    return set().union(*(known(cls) for cls in settings_classes().values()))


def is_secret(info: FieldInfo) -> bool:
    """A SecretStr field (the kind the placeholder check covers)."""
    return info.annotation in (SecretStr, SecretStr | None)


def _placeholder_default(info: FieldInfo) -> bool:
    default = info.default
    value = default.get_secret_value() if isinstance(default, SecretStr) else default
    return isinstance(value, str) and value.strip().lower() in PLACEHOLDER_SECRETS


def load_required(cls: type[BaseServiceSettings]) -> set[str]:
    """Variables without which the settings do not load outside dev.

    A field without a default, or a secret whose default is a refused placeholder.
    """
    return {
        var
        for var, (_, info) in fields(cls).items()
        if info.is_required() or (is_secret(info) and _placeholder_default(info))
    }


def secrets(cls: type[BaseServiceSettings]) -> set[str]:
    """The secret variables of a settings class."""
    return {var for var, (_, info) in fields(cls).items() if is_secret(info)}


def uses_nats(service: str) -> bool:
    """Whether the service connects to NATS (through shared.service or shared.bus)."""
    package = REPO / "services" / service
    return any(
        "shared.service" in path.read_text() or "shared.bus" in path.read_text()
        for path in package.glob("*.py")
    )


def container_required(service: str) -> set[str]:
    """Variables a long-running container must be given.

    Those the settings need to load, the environment (the default is dev), and every setting
    whose default points at the machine itself (127.0.0.1, localhost, a SQLite file), which is
    never right inside a container.
    """
    cls = settings_classes()[service]
    required = load_required(cls) | {"UPR_ENVIRONMENT"}
    for var, (name, info) in fields(cls).items():
        default = info.default
        if isinstance(default, str) and any(marker in default for marker in LOCAL_MARKERS):
            if name == "nats_url" and not uses_nats(service):
                continue
            required.add(var)
    return required


def database_services() -> list[str]:
    """Services with a database of their own (what `upr migrate` migrates)."""
    return [name for name, cls in settings_classes().items() if "database_url" in cls.model_fields]


def migrate_required(services: list[str]) -> set[str]:
    """Variables `upr migrate <services>` needs: each one's settings must load, and its URL."""
    required = {"UPR_ENVIRONMENT"}
    for service in services:
        cls = settings_classes()[service]
        required |= load_required(cls)
        required.add(env_name("database_url", cls.model_fields["database_url"]))
    return required


# --- what the deployment files pass ---------------------------------------------------------


@dataclass
class Workload:
    """One process started from the UPR Tracker image, and the variables it is given."""

    where: str  # file and name, for messages
    kind: str  # "service" or "migrate"
    services: list[str]  # the service it runs, or those it migrates
    env: dict[str, Any] = field(default_factory=dict)  # value, None when passed through
    secret_refs: set[str] = field(default_factory=set)  # k8s: variables from a Secret
    optional_refs: set[str] = field(default_factory=set)  # k8s: secretKeyRef optional

    @property
    def known(self) -> set[str]:
        """Variables the settings of every service it runs or migrates read."""
        return set().union(*(known(settings_classes()[s]) for s in self.services))

    @property
    def required(self) -> set[str]:
        """Variables it must be given."""
        if self.kind == "migrate":
            return migrate_required(self.services)
        return container_required(self.services[0])


def classify(command: list[str], where: str) -> tuple[str, list[str]]:
    """What a command of the image runs: (kind, services)."""
    names = settings_classes()
    if len(command) == 1 and command[0] in names:
        return "service", [command[0]]
    if len(command) == 3 and command[:2] == ["python", "-m"]:
        service = command[2].removeprefix("services.")
        if service in names:
            return "service", [service]
    if command[:2] == ["upr", "migrate"]:
        return "migrate", command[2:] or database_services()
    raise AssertionError(f"{where}: cannot tell what {command} runs")


def load_yaml(path: Path) -> Any:
    """One YAML document."""
    return yaml.safe_load(path.read_text())


def compose(*overrides: str) -> dict[str, Any]:
    """docker-compose.yml with override files merged the way Compose merges them."""
    merged = load_yaml(COMPOSE)
    for name in overrides:
        extra = load_yaml(OVERRIDES[name])
        for service, spec in extra["services"].items():
            base = merged["services"].setdefault(service, {})
            for key, value in spec.items():
                if isinstance(value, dict) and isinstance(base.get(key), dict):
                    base[key] = {**base[key], **value}
                elif key == "volumes" and key in base:
                    # Compose merges mounts by their target path.
                    by_target = {v.split(":")[1]: v for v in base[key]}
                    by_target.update({v.split(":")[1]: v for v in value})
                    base[key] = list(by_target.values())
                elif key == "ports" and key in base:
                    base[key] = [*base[key], *(p for p in value if p not in base[key])]
                else:
                    base[key] = value
        for key in ("volumes",):
            merged.setdefault(key, {}).update(extra.get(key) or {})
    return merged


def compose_workloads(*overrides: str) -> list[Workload]:
    """The processes docker compose starts from the UPR Tracker image."""
    label = "+".join(["docker-compose.yml", *overrides])
    workloads = []
    for name, spec in compose(*overrides)["services"].items():
        if not str(spec.get("image", "")).startswith(IMAGE):
            continue
        command = spec.get("command") or ["catalog"]
        kind, services = classify(command, f"{label} {name}")
        workloads.append(Workload(f"{label} {name}", kind, services, dict(spec["environment"])))
    return workloads


def k8s_documents() -> list[tuple[str, dict[str, Any]]]:
    """Every manifest kustomization.yaml lists, with its file name."""
    kustomization = load_yaml(K8S / "kustomization.yaml")
    docs = []
    for resource in kustomization["resources"]:
        for doc in yaml.safe_load_all((K8S / resource).read_text()):
            if doc:
                docs.append((resource, doc))
    return docs


def parse_env_file(path: Path) -> dict[str, str | None]:
    """KEY=value lines; `# KEY=value` lines (documented, commented out) give None."""
    found: dict[str, str | None] = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            found[match.group(2)] = None if match.group(1) else match.group(3)
    return found


def k8s_secret_keys() -> dict[str, str | None]:
    """Keys of the generated Secret upr-secrets (from secrets.env.example)."""
    return parse_env_file(K8S / "secrets.env.example")


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    if doc["kind"] in ("Deployment", "StatefulSet", "Job"):
        return doc["spec"]["template"]["spec"]
    return None


def k8s_workloads() -> list[Workload]:
    """Containers and init containers running the UPR Tracker image, with their variables."""
    docs = k8s_documents()
    config_maps = {
        doc["metadata"]["name"]: doc.get("data") or {}
        for _, doc in docs
        if doc["kind"] == "ConfigMap"
    }
    workloads = []
    for file, doc in docs:
        pod = _pod_spec(doc)
        if pod is None:
            continue
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            if container["image"].split(":")[0] != IMAGE:
                continue
            where = f"deploy/k8s/{file} {doc['metadata']['name']}/{container['name']}"
            command = [*container.get("command", []), *container.get("args", [])]
            kind, services = classify(command or ["catalog"], where)
            workload = Workload(where, kind, services)
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    workload.env.update(config_maps[source["configMapRef"]["name"]])
                else:
                    keys = k8s_secret_keys()
                    workload.env.update(dict.fromkeys(keys, "<secret>"))
                    workload.secret_refs |= set(keys)
            for item in container.get("env", []):
                ref = (item.get("valueFrom") or {}).get("secretKeyRef")
                if ref is not None:
                    workload.env[item["name"]] = "<secret>"
                    workload.secret_refs.add(item["name"])
                    if ref.get("optional"):
                        workload.optional_refs.add(item["name"])
                else:
                    workload.env[item["name"]] = item.get("value")
            workloads.append(workload)
    return workloads


INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interpolated(value: Any) -> list[tuple[str, str | None, str | None]]:
    """The ${VAR}, ${VAR:-default}, ${VAR:?error} references in a compose value."""
    if not isinstance(value, str):
        return []
    return [(m.group(1), m.group(2), m.group(3)) for m in INTERPOLATION.finditer(value)]


def interpolations(node: Any) -> set[tuple[str, str | None]]:
    """Every (variable, operator) a parsed compose file interpolates, anywhere in it."""
    if isinstance(node, dict):
        return set().union(set(), *(interpolations(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(set(), *(interpolations(v) for v in node))
    return {(name, op) for name, op, _ in interpolated(node)}


def all_interpolated(node: Any) -> set[str]:
    """Every variable a parsed compose file interpolates."""
    return {name for name, _ in interpolations(node)}
