"""measurements: the organisation and key that recorded them

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 03:25:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("measurements", sa.Column("organisation", sa.String(length=200), nullable=True))
    op.add_column("measurements", sa.Column("submitted_by", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("measurements") as batch:
        batch.drop_column("submitted_by")
        batch.drop_column("organisation")
