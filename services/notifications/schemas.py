"""API models of the notifications service."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from typing import Annotated, Literal

import phonenumbers
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    HttpUrl,
    field_validator,
    model_validator,
)

RecipientKind = Literal["ministry", "embassy", "ngo", "nhri", "un_agency", "coordinator", "other"]
Channel = Literal["email", "sms", "webhook"]
Cadence = Literal["immediate", "daily", "weekly"]
RoleInBody = Literal["focal_point", "head"]
DeliveryStatus = Literal["pending", "queued", "sent", "failed", "skipped", "digested", "cancelled"]
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
ISO3 = re.compile(r"^[A-Z]{3}$")


def _e164(value: str) -> str:
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException as exc:
        raise ValueError("not a phone number in international form (+855...)") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError("not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}") from exc
    return value


def _hhmm(value: str | None) -> str | None:
    if value is not None and not _HHMM.match(value):
        raise ValueError("use HH:MM (24 hours)")
    return value


def _language(value: str) -> str:
    from services.notifications.rendering import languages

    if value not in languages():
        raise ValueError(f"unsupported language {value!r}; choose one of {', '.join(languages())}")
    return value


Phone = Annotated[str, Field(max_length=32), AfterValidator(_e164)]
TimeZone = Annotated[str, Field(max_length=64), AfterValidator(_timezone)]
HHMM = Annotated[str | None, AfterValidator(_hhmm)]
Language = Annotated[str, Field(max_length=10), AfterValidator(_language)]


class SubscriptionFilters(BaseModel):
    """Which events a subscription wants; empty lists match everything."""

    model_config = ConfigDict(extra="forbid")

    recommendation_ids: list[str] = Field(default_factory=list, max_length=500)
    issues: list[str] = Field(default_factory=list, max_length=54)
    recommending_states: list[str] = Field(default_factory=list, max_length=200)
    responsible_bodies: list[str] = Field(default_factory=list, max_length=100)
    statuses: list[str] = Field(default_factory=list, max_length=10)
    event_types: list[str] = Field(default_factory=list, max_length=30)
    cycles: list[int] = Field(default_factory=list, max_length=20)
    states_under_review: list[str] = Field(default_factory=list, max_length=200)

    @field_validator("recommending_states", "states_under_review")
    @classmethod
    def _iso3(cls, values: list[str]) -> list[str]:
        upper = [v.upper() for v in values]
        for value in upper:
            if not ISO3.match(value):
                raise ValueError(f"{value!r} is not an ISO3 country code")
        return upper

    @field_validator("event_types")
    @classmethod
    def _known_types(cls, values: list[str]) -> list[str]:
        from services.notifications.routing import USER_EVENT_TYPES

        for value in values:
            if value not in USER_EVENT_TYPES:
                raise ValueError(f"unknown event type {value!r}")
        return values


class RecipientIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=2, max_length=200)
    kind: RecipientKind
    organisation: str | None = Field(None, max_length=200, description="e.g. the ministry's name")
    role_in_body: RoleInBody = "focal_point"
    represents_state: str | None = Field(
        None, description="ISO3 of the State an embassy represents"
    )
    email: EmailStr | None = None
    phone: Phone | None = None
    webhook_url: HttpUrl | None = None
    webhook_secret: str | None = Field(None, min_length=16, max_length=200)
    language: Language = "en"
    timezone: TimeZone = "UTC"
    quiet_hours_start: HHMM = None
    quiet_hours_end: HHMM = None
    builtin_routing: bool = True
    builtin_channels: list[Channel] | None = Field(
        None, description="Channels for built-in routing; default: every channel with an address"
    )
    builtin_cadence: Cadence = "immediate"

    @model_validator(mode="after")
    def _consistent(self) -> RecipientIn:
        if self.represents_state is not None:
            self.represents_state = self.represents_state.upper()
            if not ISO3.match(self.represents_state):
                raise ValueError("represents_state: use an ISO3 code, e.g. BEL")
        if self.kind == "embassy" and self.represents_state is None:
            raise ValueError("represents_state: an embassy names the State it represents")
        if (self.quiet_hours_start is None) != (self.quiet_hours_end is None):
            raise ValueError("quiet_hours_start: give both ends of the quiet hours")
        if self.webhook_url is not None and self.webhook_secret is None:
            raise ValueError("webhook_secret: a webhook needs a secret to sign with")
        if self.email is None and self.phone is None and self.webhook_url is None:
            raise ValueError("email: give an e-mail address, a phone number or a webhook")
        return self


class RecipientUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(None, min_length=2, max_length=200)
    organisation: str | None = Field(None, max_length=200)
    role_in_body: RoleInBody | None = None
    email: EmailStr | None = None
    phone: Phone | None = None
    language: Language | None = None
    timezone: TimeZone | None = None
    quiet_hours_start: HHMM = None
    quiet_hours_end: HHMM = None
    builtin_routing: bool | None = None
    builtin_channels: list[Channel] | None = None
    builtin_cadence: Cadence | None = None


class RecipientOut(BaseModel):
    id: str
    name: str
    kind: str
    organisation: str | None
    role_in_body: str
    represents_state: str | None
    email: str | None = Field(description="Masked unless the caller is an admin or the recipient")
    phone: str | None = Field(description="Masked unless the caller is an admin or the recipient")
    webhook_url: str | None = Field(
        description="Only scheme and host (https://host/***) unless the caller is an admin"
    )
    language: str
    timezone: str
    quiet_hours_start: str | None
    quiet_hours_end: str | None
    builtin_routing: bool
    builtin_channels: list[str]
    builtin_cadence: str
    unsubscribed: bool
    created_at: dt.datetime


class SubscriptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recipient_id: str = Field(max_length=32)
    filters: SubscriptionFilters = Field(default_factory=SubscriptionFilters)
    channels: list[Channel] = Field(min_length=1, max_length=3)
    cadence: Cadence = "immediate"


class SubscriptionOut(BaseModel):
    id: str
    recipient_id: str
    filters: SubscriptionFilters
    channels: list[str]
    cadence: str
    active: bool
    confirmed: bool
    created_at: dt.datetime


class SelfSubscribeIn(BaseModel):
    """Subscribe without an account; a confirmation is sent first (double opt-in)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(None, max_length=200)
    email: EmailStr | None = None
    phone: Phone | None = None
    language: Language = "en"
    timezone: TimeZone = "UTC"
    filters: SubscriptionFilters = Field(default_factory=SubscriptionFilters)
    cadence: Cadence = "immediate"

    @model_validator(mode="after")
    def _one_address(self) -> SelfSubscribeIn:
        if (self.email is None) == (self.phone is None):
            raise ValueError("email: give either an e-mail address or a phone number")
        return self


class ConfirmIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str | None = Field(None, max_length=500)
    phone: Phone | None = None
    code: str | None = Field(None, pattern=r"^\d{6}$")

    @model_validator(mode="after")
    def _token_or_code(self) -> ConfirmIn:
        if self.token is None and (self.phone is None or self.code is None):
            raise ValueError("token: give the link's token, or the phone number and its code")
        return self


class PreferencesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    language: Language | None = None
    timezone: TimeZone | None = None
    quiet_hours_start: HHMM = None
    quiet_hours_end: HHMM = None
    cadence: Cadence | None = Field(None, description="Applied to every subscription")
    builtin_routing: bool | None = None


class DeliveryOut(BaseModel):
    id: str
    event_id: str
    event_type: str
    kind: str
    recipient_id: str
    channel: str
    cadence: str
    status: str
    reason: str | None
    attempts: int
    next_attempt_at: dt.datetime
    last_error: str | None
    created_at: dt.datetime
    sent_at: dt.datetime | None


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None
