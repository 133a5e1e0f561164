"""search indexes: stored tsvector, GIN on issues and recommending_states (PostgreSQL only)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 15:00:00

The list endpoint's full-text match reads a stored, generated `text_tsv` column instead of
computing `to_tsvector('english', text)` for every candidate row (the expression index found the
rows, but each match was then rechecked by re-parsing the text). The issue and recommending-State
filters use `@>` on the JSONB columns, backed by GIN indexes, instead of EXISTS on the link
tables. The link tables stay: the facets and SQLite use them.

The column is not mapped in the ORM (SQLite has no such column): queries name it only on
PostgreSQL. Adding it rewrites the recommendations table under an exclusive lock.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "ALTER TABLE recommendations ADD COLUMN text_tsv tsvector "
        "GENERATED ALWAYS AS (to_tsvector('english'::regconfig, text)) STORED"
    )
    op.execute("DROP INDEX IF EXISTS ix_recommendations_fts")
    op.execute("CREATE INDEX ix_recommendations_text_tsv ON recommendations USING gin (text_tsv)")
    op.execute(
        "CREATE INDEX ix_recommendations_issues_gin ON recommendations "
        "USING gin (issues jsonb_path_ops)"
    )
    op.execute(
        "CREATE INDEX ix_recommendations_recommending_states_gin ON recommendations "
        "USING gin (recommending_states jsonb_path_ops)"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX IF EXISTS ix_recommendations_recommending_states_gin")
    op.execute("DROP INDEX IF EXISTS ix_recommendations_issues_gin")
    op.execute("DROP INDEX IF EXISTS ix_recommendations_text_tsv")
    op.execute("ALTER TABLE recommendations DROP COLUMN IF EXISTS text_tsv")
    op.execute(
        "CREATE INDEX ix_recommendations_fts ON recommendations "
        "USING gin (to_tsvector('english'::regconfig, text))"
    )
