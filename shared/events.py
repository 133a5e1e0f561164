"""The event contract: a CloudEvents 1.0 envelope and one versioned model per event type."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.db import utcnow

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
    traceparent: str | None = None
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
            traceparent=traceparent,
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
