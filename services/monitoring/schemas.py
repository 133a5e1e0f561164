"""API models of the monitoring service."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator

Status = Literal[
    "not_started",
    "in_progress",
    "partially_implemented",
    "fully_implemented",
    "regressed",
    "no_data",
]
STATUSES: tuple[str, ...] = Status.__args__  # type: ignore[attr-defined]
TRIGGERED_ACTION = frozenset({"partially_implemented", "fully_implemented"})
AssessorType = Literal["government", "nhri", "ngo", "un", "other"]
Dimension = Literal["law", "practice", "both"]
EvidenceKind = Literal[
    "law_or_decree",
    "budget_line",
    "court_decision",
    "government_report",
    "ngo_report",
    "media_article",
    "donor_report",
    "field_observation",
]
Visibility = Literal["public", "restricted"]
VerificationStatus = Literal["unverified", "verified", "disputed"]
DeadlineKind = Literal[
    "report",
    "response_to_pending",
    "mid_term_report",
    "stakeholder_submission",
    "next_review",
    "other",
]
GroupBy = Literal[
    "issue", "recommending_state", "responsible_body", "response", "cycle", "state_under_review"
]


def _not_future(value: dt.date | None) -> dt.date | None:
    if value is not None and value > dt.date.today():
        raise ValueError("cannot be in the future")
    return value


class AssessmentIn(BaseModel):
    """An assessment; an assessor key may only speak for its own organisation."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    status: Status
    dimension: Dimension = "both"
    assessor_type: AssessorType
    organisation: str | None = Field(
        None, min_length=2, max_length=200, description="Defaults to the key's organisation"
    )
    assessed_on: dt.date = Field(default_factory=dt.date.today)
    summary: str | None = Field(None, max_length=5000)
    evidence_ids: list[str] = Field(default_factory=list, max_length=50)

    _check_date = field_validator("assessed_on")(_not_future)


class AssessmentOut(BaseModel):
    id: str
    recommendation_id: str
    organisation: str
    assessor_type: str
    status: str
    dimension: str
    assessed_on: dt.date
    summary: str | None
    evidence_ids: list[str]
    created_at: dt.datetime


class AssessorView(BaseModel):
    status: str
    dimension: str
    organisation: str
    assessed_on: dt.date
    assessment_id: str


class ConsolidatedStatus(BaseModel):
    """The latest status per assessor type side by side, and whether they disagree."""

    recommendation_id: str
    status: str = Field(description="The status of the most recent assessment (no_data if none)")
    by_assessor_type: dict[str, AssessorView]
    by_dimension: dict[str, AssessorView]
    disagreement: bool = Field(
        description="Government and civil society (NGO or NHRI) report different statuses"
    )
    assessments: int


class TimelineEntry(BaseModel):
    date: dt.date
    kind: Literal["assessment", "evidence", "measurement", "deadline", "verification"]
    id: str
    summary: str
    details: dict[str, object]


class EvidenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    kind: EvidenceKind
    title: str = Field(min_length=3, max_length=500)
    url: HttpUrl | None = None
    published_on: dt.date | None = None
    description: str | None = Field(None, max_length=5000)
    visibility: Visibility = "public"
    reprisal_risk: bool = Field(False, description="Hide who submitted it from everyone but admins")
    submitter_name: str | None = Field(None, max_length=200)

    _check_date = field_validator("published_on")(_not_future)


class EvidenceOut(BaseModel):
    id: str
    recommendation_id: str
    kind: str
    title: str
    url: str | None
    published_on: dt.date | None
    description: str | None
    visibility: str
    reprisal_risk: bool
    submitter_organisation: str | None = Field(description="Hidden under reprisal risk")
    submitter_name: str | None = Field(description="Hidden under reprisal risk")
    file: dict[str, object] | None
    verification: dict[str, object]
    created_at: dt.datetime


class VerificationIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    status: Literal["verified", "disputed", "unverified"]
    reason: str | None = Field(None, max_length=2000)

    @model_validator(mode="after")
    def _reason_for_dispute(self) -> VerificationIn:
        if self.status == "disputed" and not self.reason:
            raise ValueError("reason: say why the evidence is disputed")
        return self


class IndicatorIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=3, max_length=300)
    kind: Literal["quantitative", "qualitative"]
    unit: str | None = Field(None, max_length=50)
    baseline_value: float | None = None
    baseline_text: str | None = Field(None, max_length=2000)
    baseline_on: dt.date | None = None
    target_value: float | None = None
    target_text: str | None = Field(None, max_length=2000)
    target_date: dt.date | None = None

    @model_validator(mode="after")
    def _values_fit_kind(self) -> IndicatorIn:
        if self.kind == "qualitative" and (
            self.baseline_value is not None or self.target_value is not None
        ):
            raise ValueError("kind: a qualitative indicator takes baseline_text and target_text")
        return self


class IndicatorOut(BaseModel):
    id: str
    recommendation_id: str
    name: str
    kind: str
    unit: str | None
    baseline_value: float | None
    baseline_text: str | None
    baseline_on: dt.date | None
    target_value: float | None
    target_text: str | None
    target_date: dt.date | None
    measurements: list[MeasurementOut]


class MeasurementIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    value: float | None = None
    text_value: str | None = Field(None, max_length=2000)
    measured_on: dt.date
    evidence_id: str | None = Field(None, max_length=32)
    organisation: str | None = Field(
        None,
        max_length=200,
        description="Who measured it; an assessor key always records its own organisation",
    )

    _check_date = field_validator("measured_on")(_not_future)

    @model_validator(mode="after")
    def _one_value(self) -> MeasurementIn:
        if (self.value is None) == (self.text_value is None):
            raise ValueError("value: give either value or text_value")
        return self


class MeasurementOut(BaseModel):
    id: str
    value: float | None
    text_value: str | None
    measured_on: dt.date
    evidence_id: str | None
    organisation: str | None


class DeadlineIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    kind: DeadlineKind = "report"
    title: str = Field(min_length=3, max_length=300)
    recommendation_id: str | None = Field(None, max_length=120)
    state_under_review: str | None = Field(None, min_length=3, max_length=3)
    cycle: int | None = Field(None, ge=1, le=20)
    responsible_body: str | None = Field(None, max_length=200)
    due_on: dt.date
    recurrence_months: int | None = Field(None, ge=1, le=120)

    @model_validator(mode="after")
    def _anchor(self) -> DeadlineIn:
        if self.recommendation_id is None and self.state_under_review is None:
            raise ValueError("recommendation_id: give a recommendation or a state_under_review")
        return self


class DeadlineUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: str | None = Field(None, min_length=3, max_length=300)
    responsible_body: str | None = Field(None, max_length=200)
    due_on: dt.date | None = None
    recurrence_months: int | None = Field(None, ge=1, le=120)


class DeadlineMetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    met_on: dt.date = Field(default_factory=dt.date.today)
    evidence_id: str | None = Field(None, max_length=32)

    _check_date = field_validator("met_on")(_not_future)


class DeadlineOut(BaseModel):
    id: str
    kind: str
    title: str
    state_under_review: str
    cycle: int | None
    recommendation_id: str | None
    responsible_body: str | None
    due_on: dt.date
    recurrence_months: int | None
    met_on: dt.date | None
    met_by_evidence_id: str | None
    overdue: bool


class StatsGroup(BaseModel):
    key: str
    total: int
    by_status: dict[str, int]
    triggered_action: int
    triggered_action_share: float = Field(
        description="Share of recommendations partially or fully implemented"
    )


class Stats(BaseModel):
    group_by: str
    overall: StatsGroup
    groups: list[StatsGroup]


IndicatorOut.model_rebuild()
