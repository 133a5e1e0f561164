"""Tables the monitoring service owns, and the read model it builds from catalog events."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import NAMING_CONVENTION, JSONType, UTCDateTime, utcnow


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TrackedRecommendation(Base):
    """The read model: a recommendation as the catalog last described it, plus its status."""

    __tablename__ = "recommendations"
    __table_args__ = (Index("ix_recommendations_sur_cycle", "state_under_review", "cycle"),)

    id: Mapped[str] = mapped_column(String(120), primary_key=True)
    number: Mapped[str | None] = mapped_column(String(40))
    text: Mapped[str] = mapped_column(Text)
    mechanism: Mapped[str] = mapped_column(String(30))
    state_under_review: Mapped[str] = mapped_column(String(3))
    cycle: Mapped[int | None] = mapped_column(Integer, index=True)
    review_date: Mapped[dt.date | None] = mapped_column(Date)
    response: Mapped[str | None] = mapped_column(String(20), index=True)
    recommending_states: Mapped[list[dict[str, str]]] = mapped_column(JSONType, default=list)
    issues: Mapped[list[str]] = mapped_column(JSONType, default=list)
    responsible_bodies: Mapped[list[dict[str, str]]] = mapped_column(JSONType, default=list)
    catalog_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(30), default="no_data", index=True)
    status_changed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class TrackedIssue(Base):
    __tablename__ = "recommendation_issues"

    recommendation_id: Mapped[str] = mapped_column(
        ForeignKey("recommendations.id", ondelete="CASCADE"), primary_key=True
    )
    issue: Mapped[str] = mapped_column(String(80), primary_key=True, index=True)


class TrackedRecommendingState(Base):
    __tablename__ = "recommendation_recommending_states"

    recommendation_id: Mapped[str] = mapped_column(
        ForeignKey("recommendations.id", ondelete="CASCADE"), primary_key=True
    )
    iso3: Mapped[str] = mapped_column(String(3), primary_key=True, index=True)


class TrackedBody(Base):
    __tablename__ = "recommendation_bodies"

    recommendation_id: Mapped[str] = mapped_column(
        ForeignKey("recommendations.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(200), primary_key=True, index=True)


class Assessment(Base):
    """Who says what about a recommendation's implementation, when, on which evidence."""

    __tablename__ = "assessments"
    __table_args__ = (
        Index("ix_assessments_rec_order", "recommendation_id", "assessed_on", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    recommendation_id: Mapped[str] = mapped_column(ForeignKey("recommendations.id"))
    organisation: Mapped[str] = mapped_column(String(200))
    assessor_type: Mapped[str] = mapped_column(String(30))
    status: Mapped[str] = mapped_column(String(30))
    dimension: Mapped[str] = mapped_column(String(10))
    assessed_on: Mapped[dt.date] = mapped_column(Date)
    summary: Mapped[str | None] = mapped_column(Text)
    evidence_ids: Mapped[list[str]] = mapped_column(JSONType, default=list)
    submitted_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Evidence(Base):
    """A source backing an assessment: law, budget line, report, article, observation."""

    __tablename__ = "evidence"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    recommendation_id: Mapped[str] = mapped_column(ForeignKey("recommendations.id"), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    title: Mapped[str] = mapped_column(String(500))
    url: Mapped[str | None] = mapped_column(String(2000))
    published_on: Mapped[dt.date | None] = mapped_column(Date)
    description: Mapped[str | None] = mapped_column(Text)
    visibility: Mapped[str] = mapped_column(String(20), default="public")
    reprisal_risk: Mapped[bool] = mapped_column(Boolean, default=False)
    submitter_organisation: Mapped[str | None] = mapped_column(String(200))
    submitter_name: Mapped[str | None] = mapped_column(String(200))
    submitted_by_key: Mapped[str] = mapped_column(String(32))
    file_sha256: Mapped[str | None] = mapped_column(String(64))
    file_name: Mapped[str | None] = mapped_column(String(300))
    file_type: Mapped[str | None] = mapped_column(String(100))
    file_size: Mapped[int | None] = mapped_column(Integer)
    verification_status: Mapped[str] = mapped_column(String(20), default="unverified")
    verified_by: Mapped[str | None] = mapped_column(String(200))
    verified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    verification_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Indicator(Base):
    """A measure of progress on a recommendation, with baseline and target."""

    __tablename__ = "indicators"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    recommendation_id: Mapped[str] = mapped_column(ForeignKey("recommendations.id"), index=True)
    name: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(20))
    unit: Mapped[str | None] = mapped_column(String(50))
    baseline_value: Mapped[float | None] = mapped_column(Float)
    baseline_text: Mapped[str | None] = mapped_column(Text)
    baseline_on: Mapped[dt.date | None] = mapped_column(Date)
    target_value: Mapped[float | None] = mapped_column(Float)
    target_text: Mapped[str | None] = mapped_column(Text)
    target_date: Mapped[dt.date | None] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Measurement(Base):
    """One value of an indicator at a date, with the evidence it comes from."""

    __tablename__ = "measurements"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    indicator_id: Mapped[str] = mapped_column(ForeignKey("indicators.id"), index=True)
    value: Mapped[float | None] = mapped_column(Float)
    text_value: Mapped[str | None] = mapped_column(Text)
    measured_on: Mapped[dt.date] = mapped_column(Date)
    evidence_id: Mapped[str | None] = mapped_column(ForeignKey("evidence.id"))
    # Who says so: the organisation and the key (None on rows from before migration 0005).
    organisation: Mapped[str | None] = mapped_column(String(200))
    submitted_by: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Deadline(Base):
    """A reporting obligation: of a body for a recommendation, or a milestone of a review."""

    __tablename__ = "deadlines"
    __table_args__ = (Index("ix_deadlines_sur_cycle", "state_under_review", "cycle"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(String(300))
    state_under_review: Mapped[str] = mapped_column(String(3))
    cycle: Mapped[int | None] = mapped_column(Integer)
    recommendation_id: Mapped[str | None] = mapped_column(
        ForeignKey("recommendations.id"), index=True
    )
    responsible_body: Mapped[str | None] = mapped_column(String(200), index=True)
    due_on: Mapped[dt.date] = mapped_column(Date, index=True)
    recurrence_months: Mapped[int | None] = mapped_column(Integer)
    met_on: Mapped[dt.date | None] = mapped_column(Date)
    met_by_evidence_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
