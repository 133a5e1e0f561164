"""Fault fixtures: a private nats-server from the wheel that tests may kill."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.nats_server import NatsServer


@pytest.fixture
def private_nats(tmp_path: Path) -> Iterator[NatsServer]:
    """A nats-server of this test's own (never the shared one on 4222)."""
    server = NatsServer(store_dir=tmp_path / "nats", name="upr-fault").start()
    yield server
    server.kill()


FAULT_SUMMARIES: list[str] = []


def summary(name: str, **figures: int) -> str:
    """The one-line fault summary `make test` prints at the end of the run."""
    line = f"FAULT {name}: " + ", ".join(f"{k}={v}" for k, v in figures.items())
    FAULT_SUMMARIES.append(line)
    return line
