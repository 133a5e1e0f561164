"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-28 13:49:27.284851
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import shared.db

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "import_runs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("format", sa.String(length=30), nullable=False),
        sa.Column("filename", sa.String(length=300), nullable=True),
        sa.Column("atomic", sa.Boolean(), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column(
            "report",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("started_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_runs")),
    )
    op.create_table(
        "recommendations",
        sa.Column("id", sa.String(length=120), nullable=False),
        sa.Column("mechanism", sa.String(length=30), nullable=False),
        sa.Column("body", sa.String(length=40), nullable=True),
        sa.Column("document", sa.String(length=80), nullable=True),
        sa.Column("number", sa.String(length=40), nullable=True),
        sa.Column("paragraph", sa.String(length=40), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=True),
        sa.Column("session", sa.Integer(), nullable=True),
        sa.Column("review_date", sa.Date(), nullable=True),
        sa.Column("state_under_review", sa.String(length=3), nullable=False),
        sa.Column(
            "recommending_states",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("response_position", sa.String(length=20), nullable=True),
        sa.Column(
            "issues",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("action_category", sa.Integer(), nullable=True),
        sa.Column("action_category_suggested", sa.Boolean(), nullable=False),
        sa.Column(
            "affected_groups",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "sdg_goals",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("cluster_id", sa.String(length=120), nullable=True),
        sa.Column("sort_key", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recommendations")),
    )
    with op.batch_alter_table("recommendations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_recommendations_action_category"), ["action_category"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_recommendations_cluster_id"), ["cluster_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_recommendations_mechanism"), ["mechanism"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_recommendations_response_position"), ["response_position"], unique=False
        )
        batch_op.create_index("ix_recommendations_sort_key_id", ["sort_key", "id"], unique=False)
        batch_op.create_index(
            "ix_recommendations_sur_cycle", ["state_under_review", "cycle"], unique=False
        )
        batch_op.create_index(
            "ix_recommendations_updated_at_id", ["updated_at", "id"], unique=False
        )

    op.create_table(
        "priorities",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("recommendation_id", sa.String(length=120), nullable=False),
        sa.Column("term", sa.String(length=10), nullable=False),
        sa.Column("set_by", sa.String(length=200), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("set_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["recommendation_id"],
            ["recommendations.id"],
            name=op.f("fk_priorities_recommendation_id_recommendations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_priorities")),
        sa.UniqueConstraint(
            "recommendation_id", "set_by", name=op.f("uq_priorities_recommendation_id_set_by")
        ),
    )
    with op.batch_alter_table("priorities", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_priorities_recommendation_id"), ["recommendation_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_priorities_term"), ["term"], unique=False)

    op.create_table(
        "recommendation_issues",
        sa.Column("recommendation_id", sa.String(length=120), nullable=False),
        sa.Column("issue", sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(
            ["recommendation_id"],
            ["recommendations.id"],
            name=op.f("fk_recommendation_issues_recommendation_id_recommendations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "recommendation_id", "issue", name=op.f("pk_recommendation_issues")
        ),
    )
    with op.batch_alter_table("recommendation_issues", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recommendation_issues_issue"), ["issue"], unique=False)

    op.create_table(
        "recommendation_recommending_states",
        sa.Column("recommendation_id", sa.String(length=120), nullable=False),
        sa.Column("iso3", sa.String(length=3), nullable=False),
        sa.ForeignKeyConstraint(
            ["recommendation_id"],
            ["recommendations.id"],
            name=op.f("fk_recommendation_recommending_states_recommendation_id_recommendations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "recommendation_id", "iso3", name=op.f("pk_recommendation_recommending_states")
        ),
    )
    with op.batch_alter_table("recommendation_recommending_states", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_recommendation_recommending_states_iso3"), ["iso3"], unique=False
        )

    op.create_table(
        "response_events",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("recommendation_id", sa.String(length=120), nullable=False),
        sa.Column("position", sa.String(length=20), nullable=False),
        sa.Column("declared_label", sa.String(length=100), nullable=True),
        sa.Column("source", sa.String(length=300), nullable=True),
        sa.Column("date", sa.Date(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("recorded_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["recommendation_id"],
            ["recommendations.id"],
            name=op.f("fk_response_events_recommendation_id_recommendations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_response_events")),
    )
    with op.batch_alter_table("response_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_response_events_recommendation_id"), ["recommendation_id"], unique=False
        )

    op.create_table(
        "responsible_bodies",
        sa.Column("recommendation_id", sa.String(length=120), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["recommendation_id"],
            ["recommendations.id"],
            name=op.f("fk_responsible_bodies_recommendation_id_recommendations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("recommendation_id", "name", name=op.f("pk_responsible_bodies")),
    )
    with op.batch_alter_table("responsible_bodies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_responsible_bodies_name"), ["name"], unique=False)

    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("organisation", sa.String(length=200), nullable=True),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=120), nullable=False),
        sa.Column("processed_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id", name=op.f("pk_inbox")),
    )
    op.create_table(
        "outbox",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=120), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=True),
        sa.Column(
            "envelope",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("published_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_outbox")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outbox_event_id")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_unpublished",
            ["seq"],
            unique=False,
            postgresql_where=sa.text("published_at IS NULL"),
            sqlite_where=sa.text("published_at IS NULL"),
        )

    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE INDEX ix_recommendations_fts ON recommendations "
            "USING gin (to_tsvector('english'::regconfig, text))"
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_outbox_unpublished",
            postgresql_where=sa.text("published_at IS NULL"),
            sqlite_where=sa.text("published_at IS NULL"),
        )

    op.drop_table("outbox")
    op.drop_table("inbox")
    op.drop_table("api_keys")
    with op.batch_alter_table("responsible_bodies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_responsible_bodies_name"))

    op.drop_table("responsible_bodies")
    with op.batch_alter_table("response_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_response_events_recommendation_id"))

    op.drop_table("response_events")
    with op.batch_alter_table("recommendation_recommending_states", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recommendation_recommending_states_iso3"))

    op.drop_table("recommendation_recommending_states")
    with op.batch_alter_table("recommendation_issues", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recommendation_issues_issue"))

    op.drop_table("recommendation_issues")
    with op.batch_alter_table("priorities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_priorities_term"))
        batch_op.drop_index(batch_op.f("ix_priorities_recommendation_id"))

    op.drop_table("priorities")
    with op.batch_alter_table("recommendations", schema=None) as batch_op:
        batch_op.drop_index("ix_recommendations_updated_at_id")
        batch_op.drop_index("ix_recommendations_sur_cycle")
        batch_op.drop_index("ix_recommendations_sort_key_id")
        batch_op.drop_index(batch_op.f("ix_recommendations_response_position"))
        batch_op.drop_index(batch_op.f("ix_recommendations_mechanism"))
        batch_op.drop_index(batch_op.f("ix_recommendations_cluster_id"))
        batch_op.drop_index(batch_op.f("ix_recommendations_action_category"))

    op.drop_table("recommendations")
    op.drop_table("import_runs")
