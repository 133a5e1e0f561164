"""`upr dev` (what `make dev` runs): the whole stack on embedded defaults, stopped by Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from cli.nats_server import free_port

REPO = Path(__file__).resolve().parents[2]


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 120.0) -> dict:
    """Poll url until it answers 200; fail early if upr dev died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "upr dev exited early"
        try:
            response = httpx.get(url, timeout=2.0)
            if response.status_code == 200:
                return response.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} never became ready")


def test_upr_dev_starts_everything_under_its_data_dir_and_stops_on_ctrl_c(
    tmp_path: Path,
) -> None:
    ports = {name: free_port() for name in ("nats", "catalog", "monitoring", "notifications")}
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("UPR_") or k in {"UPR_TEST_ARTIFACTS"}
    }
    env.update(
        UPR_DEV_NATS_PORT=str(ports["nats"]),
        UPR_CATALOG_PORT=str(ports["catalog"]),
        UPR_MONITORING_PORT=str(ports["monitoring"]),
        UPR_NOTIFICATIONS_PORT=str(ports["notifications"]),
        UPR_WEB_PORT=str(free_port()),
        UPR_SMTP_PORT=str(free_port()),
        UPR_DEV_SMS_PORT=str(free_port()),
    )
    data = tmp_path / "stack"
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "dev", "--data-dir", str(data)],
        cwd=tmp_path,  # nothing may land in the working directory's ./data
        env={**env, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        for name in ("catalog", "monitoring", "notifications"):
            wait_ready(f"http://127.0.0.1:{ports[name]}/readyz", process)
        # The Cambodia demo set is preloaded and reaches monitoring through NATS.
        catalog = httpx.get(f"http://127.0.0.1:{ports['catalog']}/v1/recommendations").json()
        assert catalog["total"] == 205 and catalog["total_exact"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            stats = httpx.get(
                f"http://127.0.0.1:{ports['monitoring']}/v1/stats", params={"group_by": "cycle"}
            ).json()
            if stats["overall"]["total"] >= 205:
                break
            time.sleep(0.5)
        assert stats["overall"]["total"] == 205
        for kept in ("catalog.db", "monitoring.db", "notifications.db", "nats"):
            assert (data / kept).exists(), kept
        assert not (tmp_path / "data").exists()
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output.decode(errors="replace")[-3000:]
    assert b"stopped" in output
