"""Use case: implementation statistics grouped by issue, State, body, response or cycle.

Each answer is two GROUP BYs over the whole read model: at 150,000 recommendations that is
~100-200 ms of PostgreSQL CPU, far too much to run for every request of a dashboard. On
PostgreSQL the answers are therefore cached in this process, per database and per question
(grouping and filters), and reused only while the database's statistics generation (migration
0002: moved at the commit of every change to what is counted) is the one they were computed
at. An answer is never stale: every request reads the generation first. One request computes
a missing answer while the others asking the same question wait for it.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring import queries
from services.monitoring.schemas import STATUSES, TRIGGERED_ACTION, Stats, StatsGroup

CACHE_SIZE = 256


def _group(key: str, counts: dict[str, int]) -> StatsGroup:
    total = sum(counts.values())
    triggered = sum(n for status, n in counts.items() if status in TRIGGERED_ACTION)
    return StatsGroup(
        key=key,
        total=total,
        by_status={status: counts.get(status, 0) for status in STATUSES},
        triggered_action=triggered,
        triggered_action_share=round(triggered / total, 4) if total else 0.0,
    )


async def _compute(session: AsyncSession, group_by: str, conditions: list[Any]) -> Stats:
    grouped: dict[str, dict[str, int]] = {}
    for key, status, n in await queries.status_counts(session, group_by, conditions):
        grouped.setdefault(key, {})[status] = n
    overall: dict[str, int] = {}
    for _, status, n in await queries.status_counts(session, None, conditions):
        overall[status] = overall.get(status, 0) + n
    groups = sorted(
        (_group(key, counts) for key, counts in grouped.items()), key=lambda g: (-g.total, g.key)
    )
    return Stats(group_by=group_by, overall=_group("all", overall), groups=groups)


@dataclass
class _Cache:
    """Answers of one database, least recently used first, each with its generation."""

    entries: OrderedDict[Hashable, tuple[int, Stats]] = field(default_factory=OrderedDict)
    locks: dict[Hashable, asyncio.Lock] = field(default_factory=dict)

    def get(self, key: Hashable, generation: int) -> Stats | None:
        entry = self.entries.get(key)
        if entry is None or entry[0] != generation:
            return None
        self.entries.move_to_end(key)
        return entry[1]

    def put(self, key: Hashable, generation: int, stats: Stats) -> None:
        self.entries[key] = (generation, stats)
        self.entries.move_to_end(key)
        while len(self.entries) > CACHE_SIZE:
            old, _ = self.entries.popitem(last=False)
            self.locks.pop(old, None)

    def lock(self, key: Hashable) -> asyncio.Lock:
        return self.locks.setdefault(key, asyncio.Lock())


# One cache per engine (that is, per database), gone with the engine.
_caches: weakref.WeakKeyDictionary[Any, _Cache] = weakref.WeakKeyDictionary()


def _question(session: AsyncSession, group_by: str, conditions: list[Any]) -> Hashable:
    """What distinguishes one question: the grouped statement and its parameter values.

    SQLAlchemy's cache key of the statement (what it reuses compiled SQL by) with the values,
    about 5 times cheaper than compiling; the compiled SQL if a construct has no cache key.
    """
    stmt = queries.status_counts_statement(group_by, conditions)
    cache_key = stmt._generate_cache_key()
    if cache_key is not None:
        return cache_key.key, repr([b.effective_value for b in cache_key.bindparams])
    compiled = stmt.compile(dialect=session.bind.dialect)
    return str(compiled), repr(sorted(compiled.params.items()))


async def compute(session: AsyncSession, group_by: str, conditions: list[Any]) -> Stats:
    """Counts per consolidated status, and the share that triggered action, per group."""
    generation = await queries.stats_generation(session)
    if generation is None:
        return await _compute(session, group_by, conditions)
    cache = _caches.setdefault(session.bind, _Cache())
    key = _question(session, group_by, conditions)
    if (hit := cache.get(key, generation)) is not None:
        return hit
    async with cache.lock(key):
        # Whoever held the lock may just have computed it at this generation.
        if (hit := cache.get(key, generation)) is not None:
            return hit
        stats = await _compute(session, group_by, conditions)
        cache.put(key, generation, stats)
        return stats
