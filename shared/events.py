"""The event contract: a CloudEvents 1.0 envelope and one versioned model per event type."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.db import utcnow
from shared.tracing import current_traceparent

SPEC_VERSION = "1.0"
SCHEMA_BASE = "urn:upr-tracker:event"


class EventData(BaseModel):
    """Base of every event payload; the subclass names its type and version."""

    model_config = ConfigDict(extra="allow")

    event_type: ClassVar[str]
    version: ClassVar[int] = 1


class Envelope(BaseModel):
    """A CloudEvents 1.0 envelope (JSON structured mode) with the UPR extensions."""

    model_config = ConfigDict(extra="allow")

    specversion: Literal["1.0"] = SPEC_VERSION
    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    source: str
    type: str
    subject: str | None = None
    time: dt.datetime = Field(default_factory=utcnow)
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str
    # W3C trace context extension: the span that recorded the event (the current one by default).
    traceparent: str | None = Field(default_factory=current_traceparent)
    data: dict[str, Any]

    @classmethod
    def wrap(
        cls, data: EventData, *, source: str, subject: str | None, traceparent: str | None = None
    ) -> Envelope:
        """Put a payload in an envelope with a fresh id."""
        return cls(
            source=source,
            type=data.event_type,
            subject=subject,
            dataschema=f"{SCHEMA_BASE}:{data.event_type}:v{data.version}",
            traceparent=traceparent or current_traceparent(),
            data=data.model_dump(mode="json"),
        )

    def payload(self) -> EventData:
        """The typed payload, validated against the model of this event's type."""
        model = EVENT_TYPES.get(self.type)
        if model is None:
            raise UnknownEventType(self.type)
        return model.model_validate(self.data)


class UnknownEventType(ValueError):
    """The envelope names a type this contract does not know."""


# --- catalog -----------------------------------------------------------------------------


class CountryRef(BaseModel):
    iso3: str
    name: str


class ResponseSnapshot(BaseModel):
    position: Literal["supported", "supported_in_part", "noted", "pending"]
    declared_label: str | None = None
    source: str | None = None
    date: dt.date | None = None
    note: str | None = None


class ResponsibleBodySnapshot(BaseModel):
    name: str
    role: Literal["lead", "contributing"]


class PrioritySnapshot(BaseModel):
    term: Literal["short", "medium", "long"]
    set_by: str
    note: str | None = None


class RecommendationSnapshot(BaseModel):
    """A recommendation's full current state, carried by every catalog event."""

    model_config = ConfigDict(extra="allow")

    id: str
    mechanism: str
    body: str | None = None
    document: str | None = None
    number: str | None = None
    paragraph: str | None = None
    text: str
    cycle: int | None = None
    session: int | None = None
    review_date: dt.date | None = None
    state_under_review: CountryRef
    recommending_states: list[CountryRef]
    response: ResponseSnapshot | None = None
    response_history: list[ResponseSnapshot] = []
    issues: list[str] = []
    action_category: int | None = None
    action_category_suggested: bool = False
    affected_groups: list[str] = []
    sdg_goals: list[int] = []
    responsible_bodies: list[ResponsibleBodySnapshot] = []
    priorities: list[PrioritySnapshot] = []
    cluster_id: str | None = None
    version: int


class RecommendationEvent(EventData):
    """Common shape of catalog events: the snapshot after the change."""

    recommendation: RecommendationSnapshot


class RecommendationCreated(RecommendationEvent):
    event_type: ClassVar[str] = "upr.catalog.recommendation.created"


class RecommendationUpdated(RecommendationEvent):
    event_type: ClassVar[str] = "upr.catalog.recommendation.updated"
    changed_fields: list[str]


class RecommendationResponseChanged(RecommendationEvent):
    event_type: ClassVar[str] = "upr.catalog.recommendation.response_changed"
    previous: ResponseSnapshot | None = None


class RecommendationAssigned(RecommendationEvent):
    event_type: ClassVar[str] = "upr.catalog.recommendation.assigned"


class RecommendationPrioritised(RecommendationEvent):
    event_type: ClassVar[str] = "upr.catalog.recommendation.prioritised"


EVENT_TYPES: dict[str, type[EventData]] = {
    model.event_type: model
    for model in (
        RecommendationCreated,
        RecommendationUpdated,
        RecommendationResponseChanged,
        RecommendationAssigned,
        RecommendationPrioritised,
    )
}


# --- monitoring --------------------------------------------------------------------------


class RecommendationRef(BaseModel):
    """What monitoring events carry about the recommendation, so consumers need not call back."""

    model_config = ConfigDict(extra="allow")

    id: str
    number: str | None = None
    text: str
    state_under_review: str
    cycle: int | None = None
    response: str | None = None
    recommending_states: list[CountryRef] = []
    issues: list[str] = []
    responsible_bodies: list[ResponsibleBodySnapshot] = []


class AssessmentSnapshot(BaseModel):
    id: str
    organisation: str
    assessor_type: str
    status: str
    dimension: str
    assessed_on: dt.date
    summary: str | None = None
    evidence_ids: list[str] = []


class EvidenceSnapshot(BaseModel):
    id: str
    kind: str
    title: str
    url: str | None = None
    published_on: dt.date | None = None
    visibility: Literal["public", "restricted"]
    verification_status: str


class VerificationSnapshot(BaseModel):
    status: Literal["unverified", "verified", "disputed"]
    by: str | None = None
    at: dt.datetime | None = None
    reason: str | None = None


class IndicatorSnapshot(BaseModel):
    id: str
    name: str
    kind: Literal["quantitative", "qualitative"]
    unit: str | None = None
    target_value: float | None = None
    target_date: dt.date | None = None


class MeasurementSnapshot(BaseModel):
    id: str
    value: float | None = None
    text_value: str | None = None
    measured_on: dt.date
    evidence_id: str | None = None


class DeadlineSnapshot(BaseModel):
    id: str
    kind: str
    title: str
    state_under_review: str
    cycle: int | None = None
    recommendation_id: str | None = None
    responsible_body: str | None = None
    due_on: dt.date
    recurrence_months: int | None = None
    met_on: dt.date | None = None


class MonitoringEvent(EventData):
    """Common shape of monitoring events about one recommendation."""

    recommendation: RecommendationRef


class AssessmentRecorded(MonitoringEvent):
    event_type: ClassVar[str] = "upr.monitoring.assessment.recorded"
    assessment: AssessmentSnapshot


class StatusChanged(MonitoringEvent):
    event_type: ClassVar[str] = "upr.monitoring.status.changed"
    previous_status: str | None
    status: str
    organisation: str
    assessor_type: str
    reason: str | None = None
    assessment_id: str


class EvidenceAdded(MonitoringEvent):
    event_type: ClassVar[str] = "upr.monitoring.evidence.added"
    evidence: EvidenceSnapshot


class EvidenceVerified(MonitoringEvent):
    event_type: ClassVar[str] = "upr.monitoring.evidence.verified"
    evidence: EvidenceSnapshot
    verification: VerificationSnapshot


class IndicatorMeasured(MonitoringEvent):
    event_type: ClassVar[str] = "upr.monitoring.indicator.measured"
    indicator: IndicatorSnapshot
    measurement: MeasurementSnapshot


class DeadlineSet(EventData):
    event_type: ClassVar[str] = "upr.monitoring.deadline.set"
    deadline: DeadlineSnapshot
    recommendation: RecommendationRef | None = None


class DeadlineMet(EventData):
    event_type: ClassVar[str] = "upr.monitoring.deadline.met"
    deadline: DeadlineSnapshot
    recommendation: RecommendationRef | None = None
    evidence_id: str | None = None


EVENT_TYPES.update(
    {
        model.event_type: model
        for model in (
            AssessmentRecorded,
            StatusChanged,
            EvidenceAdded,
            EvidenceVerified,
            IndicatorMeasured,
            DeadlineSet,
            DeadlineMet,
        )
    }
)


# --- notifications -----------------------------------------------------------------------


class DeliveryOutcome(EventData):
    """What happened to one message (never the address itself)."""

    delivery_id: str
    event_id: str
    source_event_type: str
    kind: str
    recipient_id: str
    channel: Literal["email", "sms", "webhook"]
    attempts: int


class DeliverySent(DeliveryOutcome):
    event_type: ClassVar[str] = "upr.notifications.delivery.sent"
    provider_id: str | None = None


class DeliveryFailed(DeliveryOutcome):
    event_type: ClassVar[str] = "upr.notifications.delivery.failed"
    error: str


EVENT_TYPES.update({m.event_type: m for m in (DeliverySent, DeliveryFailed)})
