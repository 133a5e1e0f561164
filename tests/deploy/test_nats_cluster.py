"""deploy/nats/nats-cluster.conf runs as a real three-node cluster (nats-server from the wheel,
on loopback), and UPR_NATS_STREAM_REPLICAS=3 gives the services R3 streams that keep taking
events with a node down."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from cli.nats_server import free_port, nats_server_binary, port_open
from shared.bus import Bus
from shared.events import Envelope
from shared.settings import BaseServiceSettings
from tests.deploy import manifests as m

CONF = m.REPO / "deploy" / "nats" / "nats-cluster.conf"
NODES = ("nats-1", "nats-2", "nats-3")


def render(client: int, monitor: int, cluster: int, routes: dict[str, int], store: Path) -> str:
    """The cluster config with loopback ports and a temporary store instead of the container's."""
    text = CONF.read_text()
    swaps = [
        (r"(?m)^port: 4222$", f"host: 127.0.0.1\nport: {client}", 1),
        (r"(?m)^http_port: 8222$", f"http: 127.0.0.1:{monitor}", 1),
        (r"(?m)^  store_dir: /data$", f"  store_dir: {store}", 1),
        (r"(?m)^  port: 6222$", f"  listen: 127.0.0.1:{cluster}", 1),
    ]
    for pattern, replacement, count in swaps:
        text, made = re.subn(pattern, replacement, text)
        assert made == count, f"{CONF.name} no longer has {pattern}"
    for name, port in routes.items():
        text, made = re.subn(rf"nats-route://{name}:6222", f"nats-route://127.0.0.1:{port}", text)
        assert made == 1, f"{CONF.name} has no route to {name}"
    return text


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[dict[str, tuple[subprocess.Popen[bytes], int]]]:
    """Three nats-server processes from the cluster config: name -> (process, client port)."""
    ports = {name: (free_port(), free_port(), free_port()) for name in NODES}
    routes = {name: p[2] for name, p in ports.items()}
    nodes: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    try:
        for name, (client, monitor, route) in ports.items():
            conf = tmp_path / f"{name}.conf"
            conf.write_text(render(client, monitor, route, routes, tmp_path / name))
            log = (tmp_path / f"{name}.log").open("wb")
            process = subprocess.Popen(
                [nats_server_binary(), "-c", str(conf)],
                env={"NATS_SERVER_NAME": name},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            nodes[name] = (process, client)
        deadline = time.monotonic() + 20
        while not all(port_open("127.0.0.1", c) for _, c in nodes.values()):
            assert time.monotonic() < deadline, "the cluster did not start"
            time.sleep(0.1)
        yield nodes
    finally:
        for process, _ in nodes.values():
            if process.poll() is None:
                process.terminate()
        for process, _ in nodes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def envelope(n: int) -> Envelope:
    return Envelope(
        source="/tests/deploy",
        type="upr.catalog.recommendation.updated",
        subject=f"KHM-2-118.{n}",
        dataschema="urn:test",
        data={"n": n},
    )


async def test_r3_streams_survive_a_node_down(
    cluster: dict[str, tuple[subprocess.Popen[bytes], int]],
) -> None:
    namespace = "t" + uuid.uuid4().hex[:12]
    url = f"nats://127.0.0.1:{cluster['nats-1'][1]}"
    settings = BaseServiceSettings(nats_url=url, nats_namespace=namespace, nats_stream_replicas=3)
    bus = Bus(settings, client_name="upr-deploy-test")
    # JetStream answers once the nodes have elected a meta leader.
    deadline = time.monotonic() + 60
    while True:
        try:
            await bus.connect(attempts=3)
            break
        except Exception:
            await bus.close()
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
    try:
        for stream in (bus.stream, bus.dead_letter_stream):
            info = await bus.js.stream_info(stream)
            assert info.config.num_replicas == 3
            assert info.cluster is not None and len(info.cluster.replicas or []) == 2
        await bus.publish(envelope(1))

        # One node goes away: two of three replicas still acknowledge.
        process, _ = cluster["nats-3"]
        process.terminate()
        process.wait(10)
        await asyncio.sleep(0.5)
        deadline = time.monotonic() + 30
        while True:
            try:
                ack = await bus.publish(envelope(2), timeout=2)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        assert ack.seq == 2
        nc = await nats.connect(url)
        try:
            info = await nc.jetstream().stream_info(bus.stream)
            assert info.state.messages == 2
        finally:
            await nc.close()
    finally:
        await bus.close()
