"""Use cases on recipients and subscriptions, including self-service without an account."""

from __future__ import annotations

import hmac
import secrets
import uuid
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.notifications import links, reminders
from services.notifications.deliveries import mask_email, mask_phone
from services.notifications.models import Recipient, Subscription
from services.notifications.routing import insert_deliveries, new_delivery
from services.notifications.schemas import (
    PreferencesIn,
    RecipientIn,
    RecipientUpdate,
    SelfSubscribeIn,
    SubscriptionIn,
)
from services.notifications.settings import NotificationsSettings
from shared.auth import Principal
from shared.db import utcnow
from shared.http import InvalidValue, NotFound


class RecipientNotFound(NotFound):
    title = "Recipient not found"


class SubscriptionNotFound(NotFound):
    title = "Subscription not found"


def mask_url(url: str | None) -> str | None:
    """https://hooks.example.org/***: where it goes, not the path or query that may be a secret."""
    if not url:
        return url
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/***"


def out(recipient: Recipient, *, reveal: bool) -> dict[str, Any]:
    """The recipient as the API shows it; addresses masked unless reveal."""
    return {
        "id": recipient.id,
        "name": recipient.name,
        "kind": recipient.kind,
        "organisation": recipient.organisation,
        "role_in_body": recipient.role_in_body,
        "represents_state": recipient.represents_state,
        "email": recipient.email if reveal else mask_email(recipient.email),
        "phone": recipient.phone if reveal else mask_phone(recipient.phone),
        "webhook_url": recipient.webhook_url if reveal else mask_url(recipient.webhook_url),
        "language": recipient.language,
        "timezone": recipient.timezone,
        "quiet_hours_start": recipient.quiet_hours_start,
        "quiet_hours_end": recipient.quiet_hours_end,
        "builtin_routing": recipient.builtin_routing,
        "builtin_channels": recipient.builtin_channels,
        "builtin_cadence": recipient.builtin_cadence,
        "unsubscribed": recipient.unsubscribed_at is not None,
        "created_at": recipient.created_at,
    }


def reveals_personal_data(principal: Principal | None) -> bool:
    """Only admins read addresses and numbers."""
    return principal is not None and principal.has_role("admin")


async def load(session: AsyncSession, recipient_id: str) -> Recipient:
    """A recipient, or 404."""
    recipient = await session.get(Recipient, recipient_id)
    if recipient is None:
        raise RecipientNotFound(f"no recipient with id {recipient_id!r}", field="path.recipient_id")
    return recipient


async def create(
    session: AsyncSession, data: RecipientIn, settings: NotificationsSettings
) -> Recipient:
    """Register a recipient (created by an editor: its addresses count as confirmed)."""
    now = utcnow()
    values = data.model_dump(mode="json")
    values["builtin_channels"] = values["builtin_channels"] or []
    recipient = Recipient(id=uuid.uuid4().hex, created_at=now, updated_at=now, **values)
    session.add(recipient)
    await session.flush()
    await reminders.plan_for_recipient(session, recipient, settings, now)
    return recipient


async def update(
    session: AsyncSession,
    recipient: Recipient,
    data: RecipientUpdate,
    settings: NotificationsSettings,
) -> Recipient:
    """Change a recipient's details or preferences."""
    changes = data.model_dump(exclude_unset=True, mode="json")
    for name, value in changes.items():
        setattr(recipient, name, value)
    recipient.updated_at = utcnow()
    if changes.keys() & {"kind", "organisation", "role_in_body"}:
        await reminders.plan_for_recipient(session, recipient, settings, recipient.updated_at)
    return recipient


async def erase(session: AsyncSession, recipient: Recipient) -> None:
    """Forget a recipient's personal data; the delivery log keeps only its id."""
    recipient.name = "erased"
    recipient.email = recipient.phone = recipient.webhook_url = recipient.webhook_secret = None
    recipient.unsubscribed_at = recipient.unsubscribed_at or utcnow()
    recipient.token_version += 1
    for subscription in await session.scalars(
        select(Subscription).where(Subscription.recipient_id == recipient.id)
    ):
        subscription.active = False


async def subscribe(session: AsyncSession, data: SubscriptionIn) -> Subscription:
    """Subscribe a known recipient (an editor's act, so no opt-in round trip)."""
    recipient = await session.get(Recipient, data.recipient_id)
    if recipient is None:
        raise InvalidValue(f"no recipient with id {data.recipient_id!r}", field="body.recipient_id")
    subscription = Subscription(
        id=uuid.uuid4().hex,
        recipient_id=recipient.id,
        filters=data.filters.model_dump(),
        channels=list(dict.fromkeys(data.channels)),
        cadence=data.cadence,
        active=True,
        confirmed=True,
        created_at=utcnow(),
    )
    # An editor cannot undo a recipient's own opt-out; only the recipient can (preferences).
    session.add(subscription)
    await session.flush()
    return subscription


def _code() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


async def self_subscribe(
    session: AsyncSession, data: SelfSubscribeIn, *, secret: str, public_url: str
) -> None:
    """Start a double opt-in: an unconfirmed subscription and a confirmation message."""
    now = utcnow()
    address_filter = Recipient.email == data.email if data.email else Recipient.phone == data.phone
    recipient = await session.scalar(
        select(Recipient).where(address_filter, Recipient.self_service.is_(True))
    )
    if recipient is None:
        recipient = Recipient(
            id=uuid.uuid4().hex,
            name=data.name or (data.email or data.phone or "subscriber"),
            kind="other",
            email=data.email,
            phone=data.phone,
            email_confirmed=False,
            phone_confirmed=False,
            language=data.language,
            timezone=data.timezone,
            builtin_routing=False,
            builtin_channels=[],
            self_service=True,
            created_at=now,
            updated_at=now,
        )
        session.add(recipient)
        await session.flush()
    code = _code()
    channel = "email" if data.email else "sms"
    subscription = Subscription(
        id=uuid.uuid4().hex,
        recipient_id=recipient.id,
        filters=data.filters.model_dump(),
        channels=[channel],
        cadence=data.cadence,
        active=True,
        confirmed=False,
        confirmation_code=code,
        created_at=now,
    )
    session.add(subscription)
    await session.flush()
    token = links.make_token(
        secret, "confirm", recipient.id, recipient.token_version, subscription.id
    )
    # The confirmation goes to the address being confirmed, so it bypasses the opt-in check.
    row = new_delivery(
        event_id=f"confirm:{subscription.id}",
        event_type="upr.notifications.confirm",
        kind="confirm",
        recipient=recipient,
        channel=channel,
        cadence="immediate",
        context={
            "event": {
                "id": subscription.id,
                "type": "upr.notifications.confirm",
                "time": now.isoformat(),
            },
            "recommendation": None,
            "data": {
                "code": code,
                "confirm_link": f"{public_url.rstrip('/')}/v1/confirm?token={token}",
            },
            "links": {"confirm": f"{public_url.rstrip('/')}/v1/confirm?token={token}"},
        },
        now=now,
        key=f"confirm:{subscription.id}:{channel}",
    )
    if row["status"] == "skipped":
        row.update(status="pending", reason=None)
    await insert_deliveries(session, [row])


async def confirm(
    session: AsyncSession,
    *,
    secret: str,
    token: str | None,
    phone: str | None,
    code: str | None,
) -> Subscription:
    """Confirm a pending subscription by its link or by phone and code."""
    if token is not None:
        claims = links.read_token(secret, "confirm", token)
        subscription = await session.get(Subscription, claims.subscription_id)
        recipient = await session.get(Recipient, claims.recipient_id)
        if subscription is None or recipient is None or subscription.recipient_id != recipient.id:
            raise links.InvalidLink("this link is not valid", field="query.token")
        if recipient.token_version != claims.version:
            raise links.InvalidLink("this link was replaced by a newer one", field="query.token")
    else:
        rows = await session.execute(
            select(Subscription, Recipient)
            .join(Recipient, Recipient.id == Subscription.recipient_id)
            .where(Recipient.phone == phone, Subscription.confirmed.is_(False))
            .order_by(Subscription.created_at.desc())
        )
        found = next(
            (
                (s, r)
                for s, r in rows
                if s.confirmation_code and hmac.compare_digest(s.confirmation_code, code or "")
            ),
            None,
        )
        if found is None:
            raise links.InvalidLink("the code does not match", field="body.code")
        subscription, recipient = found
    subscription.confirmed = True
    subscription.confirmation_code = None
    if "email" in subscription.channels:
        recipient.email_confirmed = True
    if "sms" in subscription.channels:
        recipient.phone_confirmed = True
    recipient.unsubscribed_at = None
    return subscription


async def recipient_from_link(
    session: AsyncSession, secret: str, purpose: links.Purpose, token: str
) -> tuple[Recipient, links.LinkClaims]:
    """The recipient a signed link belongs to (and only that one)."""
    claims = links.read_token(secret, purpose, token)
    recipient = await session.get(Recipient, claims.recipient_id)
    if recipient is None or recipient.token_version != claims.version:
        raise links.InvalidLink("this link is no longer valid", field="query.token")
    return recipient, claims


async def unsubscribe(session: AsyncSession, recipient: Recipient) -> None:
    """Stop everything for this recipient (subscriptions and built-in routing)."""
    recipient.unsubscribed_at = utcnow()
    for subscription in await session.scalars(
        select(Subscription).where(Subscription.recipient_id == recipient.id)
    ):
        subscription.active = False


async def set_preferences(session: AsyncSession, recipient: Recipient, data: PreferencesIn) -> None:
    """Apply preference changes made through a signed link."""
    changes = data.model_dump(exclude_unset=True)
    cadence = changes.pop("cadence", None)
    for name, value in changes.items():
        setattr(recipient, name, value)
    recipient.updated_at = utcnow()
    if cadence is not None:
        for subscription in await session.scalars(
            select(Subscription).where(Subscription.recipient_id == recipient.id)
        ):
            subscription.cadence = cadence


async def subscriptions_of(session: AsyncSession, recipient_id: str | None) -> list[Subscription]:
    """Subscriptions, optionally of one recipient."""
    stmt = select(Subscription).order_by(Subscription.created_at)
    if recipient_id:
        stmt = stmt.where(Subscription.recipient_id == recipient_id)
    return list(await session.scalars(stmt))
