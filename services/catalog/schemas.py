"""API models of the catalog."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from services.catalog.countries import UnknownCountry, resolve_country
from services.catalog.queries import TOTAL_CAP
from services.catalog.vocabulary import UnknownIssue, normalise_issue
from shared.events import CountryRef, RecommendationSnapshot

Mechanism = Literal["upr", "treaty_body", "special_procedure"]
Position = Literal["supported", "supported_in_part", "noted", "pending"]
BodyRole = Literal["lead", "contributing"]
Term = Literal["short", "medium", "long"]

NUMBER_PATTERN = r"^[0-9A-Za-z][0-9A-Za-z.()\-]{0,39}$"
BODY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9\-]{0,39}$"


def _country(value: str) -> str:
    try:
        return resolve_country(value).iso3
    except UnknownCountry as exc:
        raise ValueError(str(exc)) from exc


def _issue(value: str) -> str:
    try:
        return normalise_issue(value)
    except UnknownIssue as exc:
        raise ValueError(str(exc)) from exc


CountryCode = Annotated[str, Field(min_length=2, max_length=120), AfterValidator(_country)]
IssueLabel = Annotated[str, Field(min_length=1, max_length=80), AfterValidator(_issue)]
ShortText = Annotated[str, Field(min_length=1, max_length=200)]


class ResponseIn(BaseModel):
    """A response the State gave (appended to the history)."""

    model_config = ConfigDict(extra="forbid")

    position: Position
    declared_label: str | None = Field(None, max_length=100, examples=["rejected"])
    source: str | None = Field(None, max_length=300, examples=["A/HRC/26/16/Add.1"])
    date: dt.date | None = None
    note: str | None = Field(None, max_length=2000)


class RecommendationFields(BaseModel):
    """Descriptive fields shared by create and import."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    document: str | None = Field(None, max_length=80, examples=["A/HRC/26/16"])
    paragraph: str | None = Field(None, max_length=40, examples=["118"])
    text: str = Field(min_length=3, max_length=5000)
    session: int | None = Field(None, ge=1, le=200)
    review_date: dt.date | None = None
    recommending_states: list[CountryCode] = Field(default_factory=list, max_length=60)
    issues: list[IssueLabel] = Field(default_factory=list, max_length=54)
    action_category: int | None = Field(None, ge=1, le=5)
    affected_groups: list[ShortText] = Field(default_factory=list, max_length=50)
    sdg_goals: list[Annotated[int, Field(ge=1, le=17)]] = Field(default_factory=list)


class RecommendationCreate(RecommendationFields):
    """A new recommendation; its id is derived from mechanism, State, cycle and number."""

    mechanism: Mechanism = "upr"
    body: str | None = Field(
        None, pattern=BODY_PATTERN, description="Treaty body or special procedure code, e.g. CEDAW"
    )
    number: str | None = Field(None, pattern=NUMBER_PATTERN, examples=["118.17"])
    cycle: int | None = Field(None, ge=1, le=20)
    state_under_review: CountryCode
    responses: list[ResponseIn] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _mechanism_rules(self) -> RecommendationCreate:
        if not self.recommending_states and self.mechanism == "upr":
            raise ValueError("recommending_states: a UPR recommendation names at least one State")
        if self.mechanism == "upr":
            if self.cycle is None:
                raise ValueError("cycle: a UPR recommendation needs its cycle")
            if self.body is not None:
                raise ValueError("body: only treaty bodies and special procedures have a body")
        else:
            if self.body is None or self.number is None or self.document is None:
                raise ValueError(
                    "body, document and number (paragraph) are required for "
                    f"{self.mechanism} recommendations"
                )
        self.recommending_states = list(dict.fromkeys(self.recommending_states))
        self.issues = list(dict.fromkeys(self.issues))
        return self


class RecommendationUpdate(BaseModel):
    """Fields an editor may change; identity fields (mechanism, State, cycle, number) cannot."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    document: str | None = Field(None, max_length=80)
    paragraph: str | None = Field(None, max_length=40)
    text: str | None = Field(None, min_length=3, max_length=5000)
    session: int | None = Field(None, ge=1, le=200)
    review_date: dt.date | None = None
    recommending_states: list[CountryCode] | None = Field(None, min_length=1, max_length=60)
    issues: list[IssueLabel] | None = Field(None, max_length=54)
    action_category: int | None = Field(None, ge=1, le=5)
    affected_groups: list[ShortText] | None = Field(None, max_length=50)
    sdg_goals: list[Annotated[int, Field(ge=1, le=17)]] | None = None
    cluster_id: str | None = Field(None, max_length=120)


class ResponsibleBodyIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=2, max_length=200, examples=["Ministry of Justice"])
    role: BodyRole = "lead"


class AssignmentIn(BaseModel):
    """The full set of responsible bodies (replaces the previous set)."""

    model_config = ConfigDict(extra="forbid")

    responsible_bodies: list[ResponsibleBodyIn] = Field(max_length=30)

    @model_validator(mode="after")
    def _unique(self) -> AssignmentIn:
        names = [b.name.casefold() for b in self.responsible_bodies]
        if len(names) != len(set(names)):
            raise ValueError("responsible_bodies: a body is named twice")
        return self


class PriorityIn(BaseModel):
    """A priority set by a named group (one per group; setting again replaces it)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    term: Term
    set_by: str = Field(min_length=2, max_length=200, examples=["CHRAC coalition"])
    note: str | None = Field(None, max_length=2000)


class RecommendationOut(RecommendationSnapshot):
    """A recommendation with its full current state."""

    created_at: dt.datetime
    updated_at: dt.datetime


class RecommendationSummary(BaseModel):
    """A list item."""

    id: str
    mechanism: str
    number: str | None
    text: str
    cycle: int | None
    state_under_review: str
    response: Position | None
    recommending_states: list[CountryRef]
    issues: list[str]
    action_category: int | None
    action_category_suggested: bool
    created_at: dt.datetime
    updated_at: dt.datetime = Field(description="Of the latest change (sort=-updated_at)")


class RecommendationPage(BaseModel):
    items: list[RecommendationSummary]
    total: int = Field(
        description=f"How many recommendations match the filters, counted up to {TOTAL_CAP:,}: "
        f"beyond that it is {TOTAL_CAP:,} and `total_exact` is false. The facets endpoint "
        "counts every match."
    )
    total_exact: bool = Field(
        description=f"False when more than {TOTAL_CAP:,} match and `total` is a lower bound"
    )
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page")


class FacetCounts(BaseModel):
    total: int
    facets: dict[str, dict[str, int]]


class SimilarRecommendation(BaseModel):
    id: str
    number: str | None
    text: str
    recommending_states: list[CountryRef]
    similarity: float = Field(ge=0, le=1)


class Rejection(BaseModel):
    line: int
    reason: str


class ImportReport(BaseModel):
    id: str | None = Field(
        None, description="Id of the stored report; none when nothing was written"
    )
    format: str
    atomic: bool
    committed: bool
    created: int
    updated: int
    unchanged: int
    rejected: list[Rejection]


ImportFormat = Literal["upr-info-csv", "report-text", "positions-csv", "csv", "json"]
ExportFormat = Literal["csv", "json", "ndjson"]
