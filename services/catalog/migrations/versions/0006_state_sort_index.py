"""the list of one State's recommendations, in number order, from an index

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 06:10:00

`GET /v1/recommendations?state_under_review=KHM` sorts by `sort_key` (State, cycle, number). The
planner walked the whole `sort_key` index and dropped every other State's rows on the way: tens
of milliseconds at 150,000 recommendations for a State in the middle of the alphabet. With an
index on (state_under_review, sort_key, id) it reads that State's first rows directly.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_recommendations_sur_sort_key_id",
        "recommendations",
        ["state_under_review", "sort_key", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_recommendations_sur_sort_key_id", table_name="recommendations")
