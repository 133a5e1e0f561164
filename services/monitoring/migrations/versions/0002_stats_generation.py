"""stats generation: a counter every change to what /v1/stats counts moves (PostgreSQL)

The statistics are GROUP BYs over the whole read model (150,000 recommendations: ~100-200 ms
of PostgreSQL CPU per request). stats.compute caches its answers per generation: a cached
answer is served only while the generation is the one it was computed at.

Triggers bump the generation once per transaction that inserts, deletes or changes (status,
response, cycle, State under review) a recommendation or changes its issues, recommending
States or responsible bodies. They are deferred constraint triggers: the bump happens at
commit, so the counter row is locked only while committing (writers never wait for each other
longer than that, and no deadlock can involve it) and it becomes visible together with the
change it stands for.

SQLite (development) gets no table: there stats are computed on every request.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 15:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LINK_TABLES = (
    "recommendation_issues",
    "recommendation_recommending_states",
    "recommendation_bodies",
)

BUMP_FUNCTION = """
CREATE FUNCTION stats_generation_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Once per transaction: the flag is local to it (set_config(..., true)).
    IF coalesce(current_setting('upr.stats_generation_bumped', true), '') <> 'on' THEN
        UPDATE stats_generation SET value = value + 1 WHERE id = 1;
        PERFORM set_config('upr.stats_generation_bumped', 'on', true);
    END IF;
    RETURN NULL;
END
$$
"""


def _triggers() -> list[tuple[str, str, str]]:
    """(trigger name, table, events) of the deferred row triggers."""
    triggers = [
        (
            "stats_generation_recommendations",
            "recommendations",
            "INSERT OR DELETE OR UPDATE OF id, status, response, cycle, state_under_review",
        )
    ]
    triggers += [(f"stats_generation_{t}", t, "INSERT OR DELETE OR UPDATE") for t in LINK_TABLES]
    return triggers


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.create_table(
        "stats_generation",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stats_generation")),
    )
    op.execute("INSERT INTO stats_generation (id, value) VALUES (1, 0)")
    op.execute(BUMP_FUNCTION)
    for name, table, events in _triggers():
        op.execute(
            f"CREATE CONSTRAINT TRIGGER {name} AFTER {events} ON {table} "
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION stats_generation_bump()"
        )
    for table in ("recommendations", *LINK_TABLES):
        op.execute(
            f"CREATE TRIGGER stats_generation_{table}_truncate AFTER TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION stats_generation_bump()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in ("recommendations", *LINK_TABLES):
        op.execute(f"DROP TRIGGER IF EXISTS stats_generation_{table}_truncate ON {table}")
    for name, table, _events in _triggers():
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
    op.execute("DROP FUNCTION IF EXISTS stats_generation_bump()")
    op.drop_table("stats_generation")
