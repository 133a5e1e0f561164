"""The Kubernetes manifests: valid against the API schemas, probes on /readyz and /healthz,
resources, non-root, two or more replicas, a three-node NATS cluster with R3 streams."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from kubernetes_validate import utils as k8s_validate

from cli.nats_server import nats_server_binary
from tests.deploy import manifests as m

KUBERNETES_VERSION = "1.30.0"
DOCS = m.k8s_documents()


def kind(name: str) -> list[dict[str, Any]]:
    return [doc for _, doc in DOCS if doc["kind"] == name]


def named(kind_name: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in kind(kind_name) if d["metadata"]["name"] == name]
    return doc


def config(name: str) -> dict[str, str]:
    return named("ConfigMap", name)["data"]


@pytest.mark.parametrize(
    "doc", [d for _, d in DOCS], ids=lambda d: f"{d['kind']}/{d['metadata']['name']}"
)
def test_manifest_is_valid_for_the_kubernetes_api(doc: dict[str, Any]) -> None:
    k8s_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_kustomization_names_our_image_and_the_secret_file() -> None:
    kustomization = m.load_yaml(m.K8S / "kustomization.yaml")
    assert kustomization["namespace"] == "upr-tracker"
    (image,) = kustomization["images"]
    assert image["name"] == m.IMAGE and re.fullmatch(r"\d+\.\d+\.\d+", image["newTag"])
    (generated,) = kustomization["secretGenerator"]
    assert generated == {"name": "upr-secrets", "envs": ["secrets.env"]}
    assert "secrets.env" in (m.K8S / ".gitignore").read_text().split()
    assert (m.K8S / "secrets.env.example").exists()
    assert named("Namespace", "upr-tracker")["metadata"]["labels"] == {
        "pod-security.kubernetes.io/enforce": "restricted"
    }


def pods() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(kind/name, workload, pod spec) of every Deployment, StatefulSet and Job."""
    return [
        (f"{doc['kind']}/{doc['metadata']['name']}", doc, doc["spec"]["template"]["spec"])
        for doc in kind("Deployment") + kind("StatefulSet") + kind("Job")
    ]


@pytest.mark.parametrize("where,doc,pod", pods(), ids=lambda v: v if isinstance(v, str) else "")
def test_pods_run_as_non_root_with_resources(where: str, doc: dict, pod: dict) -> None:
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True, where
    assert security["runAsUser"] > 0 and security["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    for container in [*pod.get("initContainers", []), *pod["containers"]]:
        ours = container["image"] == m.IMAGE
        image = container["image"]
        assert ours or re.search(r":\d+\.\d+\.\d+", image), f"{where}: {image} is not pinned"
        if ours:
            assert security["runAsUser"] == 10001  # the image's USER
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        }, f"{where}/{container['name']}"
        resources = container["resources"]
        assert set(resources) == {"requests", "limits"}, f"{where}/{container['name']}"
        assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"]


@pytest.mark.parametrize("service", ["catalog", "monitoring", "notifications", "web"])
def test_services_are_replicated_and_probed(service: str) -> None:
    if service == "web" and not (m.REPO / "services" / "web" / "__main__.py").exists():
        pytest.skip("no web service yet")
    deployment = named("Deployment", service)
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = deployment["spec"]["template"]["spec"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == labels
    (container,) = pod["containers"]
    assert container["args"] == [service]
    cls = m.settings_classes()[service]
    port_var = m.env_name("port", cls.model_fields["port"])
    port = int(config(f"upr-{service}").get(port_var, cls.model_fields["port"].default))
    assert container["ports"] == [{"name": "http", "containerPort": port}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    # A Service in front, and a disruption budget that keeps one pod up during drains.
    svc = named("Service", service)
    assert svc["spec"]["selector"] == labels
    assert svc["spec"]["ports"] == [{"name": "http", "port": port, "targetPort": "http"}]
    assert named("PodDisruptionBudget", service)["spec"]["selector"]["matchLabels"] == labels
    # The pod migrates its own database first (under the advisory lock) when it has one.
    if "database_url" in cls.model_fields:
        (init,) = pod["initContainers"]
        assert init["args"] == ["upr", "migrate", service]


def test_the_migrate_job_runs_every_migration() -> None:
    job = named("Job", "upr-migrate")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["upr", "migrate"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] in ("OnFailure", "Never")


def test_evidence_is_shared_by_every_monitoring_replica() -> None:
    claim = named("PersistentVolumeClaim", "upr-evidence")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    pod = named("Deployment", "monitoring")["spec"]["template"]["spec"]
    mounts = {v["name"]: v["mountPath"] for v in pod["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["evidence"] == config("upr-monitoring")["UPR_MONITORING_UPLOAD_DIR"]
    assert volumes["evidence"]["persistentVolumeClaim"]["claimName"] == "upr-evidence"


def test_nats_is_a_three_node_cluster_with_r3_streams(tmp_path: Path) -> None:
    statefulset = named("StatefulSet", "nats")
    assert statefulset["spec"]["replicas"] == 3
    assert statefulset["spec"]["podManagementPolicy"] == "Parallel"
    headless = named("Service", statefulset["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    pod = statefulset["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mounts = {v["name"]: v["mountPath"] for v in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == "/data"
    assert container["livenessProbe"]["httpGet"]["path"].startswith("/healthz")
    assert container["readinessProbe"]["httpGet"]["path"].startswith("/healthz")

    conf = config("nats-config")["nats.conf"]
    assert re.search(r"^\s*sync_interval:\s*always", conf, re.M)
    assert re.search(r"^\s*store_dir:\s*/data", conf, re.M)
    routes = re.findall(r"nats-route://([a-z0-9.-]+):6222", conf)
    service = headless["metadata"]["name"]
    assert routes == [f"nats-{i}.{service}" for i in range(3)]
    # nats-server itself accepts the configuration.
    path = tmp_path / "nats.conf"
    path.write_text(conf)
    checked = subprocess.run(
        [nats_server_binary(), "-t", "-c", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "POD_NAME": "nats-0"},
        timeout=30,
    )
    assert checked.returncode == 0, checked.stderr

    # The services reach it through its client Service and replicate every stream three times.
    shared = config("upr-config")
    assert shared["UPR_NATS_STREAM_REPLICAS"] == "3"
    client = named("Service", "nats")
    assert shared["UPR_NATS_URL"] == f"nats://{client['metadata']['name']}:4222"
    assert client["spec"]["selector"] == statefulset["spec"]["template"]["metadata"]["labels"]
