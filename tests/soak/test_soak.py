"""A short soak of the whole stack: nothing lost, nothing sent twice, no 5xx, memory flat."""

from __future__ import annotations

import json

from bench.soak import SoakConfig, SoakTarget, failures, run_soak
from tests.notifications.conftest import Stack

CONFIG = SoakConfig(duration_s=30.0, readers=4, catalog_writes_per_s=4.0, status_changes_per_s=2.0)


async def test_a_short_soak_loses_nothing_and_stays_flat(stack: Stack) -> None:
    target = SoakTarget(
        stack.catalog, stack.monitoring, stack.notifications, stack.admin, stack.smtp, stack.sms
    )
    report = await run_soak(target, CONFIG)
    print(json.dumps(report, indent=2))
    # Enough happened for the verdicts to mean something (a loaded machine falls behind the
    # pace, hence the margin).
    assert report["status_changes"] >= 0.25 * CONFIG.duration_s * CONFIG.status_changes_per_s
    assert report["catalog_writes"] >= 0.25 * CONFIG.duration_s * CONFIG.catalog_writes_per_s
    assert report["requests"] > 200
    assert report["deliveries_expected"] == report["status_changes"] * 6
    assert report["messages_received"] == report["deliveries_expected"]
    assert failures(report) == []
