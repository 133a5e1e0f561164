"""Tables the catalog owns."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from shared.db import NAMING_CONVENTION, JSONType, UTCDateTime, utcnow


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Recommendation(Base):
    """One recommendation made to a State by the UPR, a treaty body or a special procedure."""

    __tablename__ = "recommendations"
    __table_args__ = (
        Index("ix_recommendations_sort_key_id", "sort_key", "id"),
        Index("ix_recommendations_sur_cycle", "state_under_review", "cycle"),
        Index("ix_recommendations_sur_sort_key_id", "state_under_review", "sort_key", "id"),
        Index("ix_recommendations_updated_at_id", "updated_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(120), primary_key=True)
    mechanism: Mapped[str] = mapped_column(String(30), index=True)
    body: Mapped[str | None] = mapped_column(String(40))
    document: Mapped[str | None] = mapped_column(String(80))
    number: Mapped[str | None] = mapped_column(String(40))
    paragraph: Mapped[str | None] = mapped_column(String(40))
    text: Mapped[str] = mapped_column(Text)
    cycle: Mapped[int | None] = mapped_column(Integer)
    session: Mapped[int | None] = mapped_column(Integer)
    review_date: Mapped[dt.date | None] = mapped_column(Date)
    state_under_review: Mapped[str] = mapped_column(String(3))
    recommending_states: Mapped[list[str]] = mapped_column(JSONType, default=list)
    response_position: Mapped[str | None] = mapped_column(String(20), index=True)
    issues: Mapped[list[str]] = mapped_column(JSONType, default=list)
    action_category: Mapped[int | None] = mapped_column(Integer, index=True)
    action_category_suggested: Mapped[bool] = mapped_column(Boolean, default=False)
    affected_groups: Mapped[list[str]] = mapped_column(JSONType, default=list)
    sdg_goals: Mapped[list[int]] = mapped_column(JSONType, default=list)
    cluster_id: Mapped[str | None] = mapped_column(String(120), index=True)
    sort_key: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    responses: Mapped[list[ResponseEvent]] = relationship(
        lazy="raise", order_by="ResponseEvent.seq", cascade="all, delete-orphan"
    )
    responsible_bodies: Mapped[list[ResponsibleBody]] = relationship(
        lazy="raise", order_by="ResponsibleBody.position", cascade="all, delete-orphan"
    )
    priorities: Mapped[list[Priority]] = relationship(
        lazy="raise", order_by="Priority.set_at", cascade="all, delete-orphan"
    )


class RecommendingState(Base):
    """Link table for filtering by recommending State (the row also keeps them as JSON)."""

    __tablename__ = "recommendation_recommending_states"

    recommendation_id: Mapped[str] = mapped_column(
        ForeignKey("recommendations.id", ondelete="CASCADE"), primary_key=True
    )
    iso3: Mapped[str] = mapped_column(String(3), primary_key=True, index=True)


class RecommendationIssue(Base):
    """Link table for filtering by UPR Info issue."""

    __tablename__ = "recommendation_issues"

    recommendation_id: Mapped[str] = mapped_column(
        ForeignKey("recommendations.id", ondelete="CASCADE"), primary_key=True
    )
    issue: Mapped[str] = mapped_column(String(80), primary_key=True, index=True)


class ResponseEvent(Base):
    """One response the State gave; the latest is the current response."""

    __tablename__ = "response_events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recommendation_id: Mapped[str] = mapped_column(
        ForeignKey("recommendations.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[str] = mapped_column(String(20))
    declared_label: Mapped[str | None] = mapped_column(String(100))
    source: Mapped[str | None] = mapped_column(String(300))
    date: Mapped[dt.date | None] = mapped_column(Date)
    note: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ResponsibleBody(Base):
    """A ministry or institution responsible for implementing a recommendation."""

    __tablename__ = "responsible_bodies"

    recommendation_id: Mapped[str] = mapped_column(
        ForeignKey("recommendations.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(200), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(20))
    position: Mapped[int] = mapped_column(Integer, default=0)


class Priority(Base):
    """A priority a named group or coalition set for a recommendation."""

    __tablename__ = "priorities"
    __table_args__ = (UniqueConstraint("recommendation_id", "set_by"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recommendation_id: Mapped[str] = mapped_column(
        ForeignKey("recommendations.id", ondelete="CASCADE"), index=True
    )
    term: Mapped[str] = mapped_column(String(10), index=True)
    set_by: Mapped[str] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)
    set_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ImportRun(Base):
    """The report of one import, kept so it can be read again."""

    __tablename__ = "import_runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    format: Mapped[str] = mapped_column(String(30))
    filename: Mapped[str | None] = mapped_column(String(300))
    atomic: Mapped[bool] = mapped_column(Boolean)
    created: Mapped[int] = mapped_column(Integer)
    updated: Mapped[int] = mapped_column(Integer)
    unchanged: Mapped[int] = mapped_column(Integer)
    rejected: Mapped[int] = mapped_column(Integer)
    report: Mapped[dict[str, object]] = mapped_column(JSONType)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
