"""HTTP layer of the notifications service: parse, authorise, call the use case, respond."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from services.notifications import recipients
from services.notifications.links import InvalidLink
from services.notifications.models import Delivery
from services.notifications.schemas import (
    ConfirmIn,
    DeliveryOut,
    DeliveryPage,
    DeliveryStatus,
    PreferencesIn,
    RecipientIn,
    RecipientOut,
    RecipientUpdate,
    SelfSubscribeIn,
    SubscriptionIn,
    SubscriptionOut,
)
from shared.auth import AUTH_ERRORS, AdminKey, EditorKey
from shared.http import InvalidValue, SessionDep, problem_responses
from shared.ratelimit import limit_self_service

router = APIRouter(prefix="/v1")
WRITE_ERRORS = {**AUTH_ERRORS, **problem_responses(InvalidValue)}
RECIPIENT_NOT_FOUND = problem_responses(recipients.RecipientNotFound)
LINK_ERRORS = problem_responses(InvalidLink)
RecipientIdPath = Annotated[str, Path(max_length=32)]


def _secret(request: Request) -> str:
    return request.app.state.settings.secret_key.get_secret_value()


def _subscription_out(s) -> SubscriptionOut:
    return SubscriptionOut.model_validate(s, from_attributes=True)


@router.post(
    "/recipients",
    tags=["recipients"],
    status_code=status.HTTP_201_CREATED,
    summary="Register a recipient (ministry, embassy, NGO, coordinator...)",
    responses=WRITE_ERRORS,
)
async def create_recipient(
    request: Request, principal: EditorKey, body: RecipientIn, session: SessionDep
) -> RecipientOut:
    recipient = await recipients.create(session, body, request.app.state.settings)
    return RecipientOut.model_validate(
        recipients.out(recipient, reveal=recipients.reveals_personal_data(principal))
    )


@router.get(
    "/recipients",
    tags=["recipients"],
    summary="Recipients (addresses masked unless the key is an admin's)",
    responses=AUTH_ERRORS,
)
async def list_recipients(
    principal: EditorKey,
    session: SessionDep,
    kind: Annotated[str | None, Query(max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[RecipientOut]:
    from services.notifications.models import Recipient

    stmt = select(Recipient).order_by(Recipient.created_at).limit(limit)
    if kind:
        stmt = stmt.where(Recipient.kind == kind)
    reveal = recipients.reveals_personal_data(principal)
    return [
        RecipientOut.model_validate(recipients.out(r, reveal=reveal))
        for r in await session.scalars(stmt)
    ]


@router.get(
    "/recipients/{recipient_id}",
    tags=["recipients"],
    summary="One recipient",
    responses={**AUTH_ERRORS, **RECIPIENT_NOT_FOUND},
)
async def get_recipient(
    principal: EditorKey, recipient_id: RecipientIdPath, session: SessionDep
) -> RecipientOut:
    recipient = await recipients.load(session, recipient_id)
    return RecipientOut.model_validate(
        recipients.out(recipient, reveal=recipients.reveals_personal_data(principal))
    )


@router.patch(
    "/recipients/{recipient_id}",
    tags=["recipients"],
    summary="Change a recipient",
    responses={**WRITE_ERRORS, **RECIPIENT_NOT_FOUND},
)
async def update_recipient(
    request: Request,
    principal: EditorKey,
    recipient_id: RecipientIdPath,
    body: RecipientUpdate,
    session: SessionDep,
) -> RecipientOut:
    recipient = await recipients.update(
        session,
        await recipients.load(session, recipient_id),
        body,
        request.app.state.settings,
    )
    return RecipientOut.model_validate(
        recipients.out(recipient, reveal=recipients.reveals_personal_data(principal))
    )


@router.delete(
    "/recipients/{recipient_id}",
    tags=["recipients"],
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Erase a recipient's personal data (admin)",
    responses={**AUTH_ERRORS, **RECIPIENT_NOT_FOUND},
)
async def erase_recipient(_: AdminKey, recipient_id: RecipientIdPath, session: SessionDep) -> None:
    await recipients.erase(session, await recipients.load(session, recipient_id))


@router.post(
    "/subscriptions",
    tags=["subscriptions"],
    status_code=status.HTTP_201_CREATED,
    summary="Subscribe a recipient to events matching a filter",
    responses=WRITE_ERRORS,
)
async def create_subscription(
    _: EditorKey, body: SubscriptionIn, session: SessionDep
) -> SubscriptionOut:
    return _subscription_out(await recipients.subscribe(session, body))


@router.get(
    "/subscriptions", tags=["subscriptions"], summary="Subscriptions", responses=AUTH_ERRORS
)
async def list_subscriptions(
    _: EditorKey,
    session: SessionDep,
    recipient_id: Annotated[str | None, Query(max_length=32)] = None,
) -> list[SubscriptionOut]:
    return [_subscription_out(s) for s in await recipients.subscriptions_of(session, recipient_id)]


@router.delete(
    "/subscriptions/{subscription_id}",
    tags=["subscriptions"],
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End a subscription",
    responses={**AUTH_ERRORS, **problem_responses(recipients.SubscriptionNotFound)},
)
async def delete_subscription(
    _: EditorKey, subscription_id: Annotated[str, Path(max_length=32)], session: SessionDep
) -> None:
    from services.notifications.models import Subscription

    subscription = await session.get(Subscription, subscription_id)
    if subscription is None:
        raise recipients.SubscriptionNotFound(
            f"no subscription with id {subscription_id!r}", field="path.subscription_id"
        )
    subscription.active = False


@router.post(
    "/subscribe",
    tags=["self-service"],
    status_code=status.HTTP_202_ACCEPTED,
    summary="Subscribe without an account: a confirmation link or code is sent first",
    responses=problem_responses(InvalidValue),
)
async def self_subscribe(
    request: Request, body: SelfSubscribeIn, session: SessionDep
) -> dict[str, str]:
    settings = request.app.state.settings
    await limit_self_service(request, "subscribe", body.email or body.phone)
    await recipients.self_subscribe(
        session, body, secret=_secret(request), public_url=settings.public_url
    )
    return {"status": "confirmation sent"}


@router.get(
    "/confirm",
    tags=["self-service"],
    summary="Confirm a subscription from the link in the confirmation message",
    response_class=HTMLResponse,
    responses=LINK_ERRORS,
)
async def confirm_link(
    request: Request, token: Annotated[str, Query(max_length=500)], session: SessionDep
) -> HTMLResponse:
    await recipients.confirm(session, secret=_secret(request), token=token, phone=None, code=None)
    return HTMLResponse(
        _page("Subscription confirmed", "You will now receive the alerts you chose.")
    )


@router.post(
    "/confirm",
    tags=["self-service"],
    summary="Confirm a subscription with the link's token, or the phone number and SMS code",
    responses={**LINK_ERRORS, **problem_responses(InvalidValue)},
)
async def confirm(request: Request, body: ConfirmIn, session: SessionDep) -> SubscriptionOut:
    await limit_self_service(request, "confirm", body.phone if body.token is None else None)
    subscription = await recipients.confirm(
        session, secret=_secret(request), token=body.token, phone=body.phone, code=body.code
    )
    return _subscription_out(subscription)


def _page(title: str, message: str) -> str:
    return (
        f'<!doctype html><html lang="en"><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{title}</title><main><h1>{title}</h1><p>{message}</p></main></html>"
    )


@router.get(
    "/unsubscribe",
    tags=["self-service"],
    summary="The unsubscribe page of the link in every message (asks to confirm)",
    response_class=HTMLResponse,
    responses=LINK_ERRORS,
)
async def unsubscribe_page(
    request: Request, token: Annotated[str, Query(max_length=500)], session: SessionDep
) -> HTMLResponse:
    await recipients.recipient_from_link(session, _secret(request), "unsubscribe", token)
    return HTMLResponse(
        '<!doctype html><html lang="en"><meta charset="utf-8"><title>Unsubscribe</title><main>'
        "<h1>Unsubscribe</h1><form method=post>"
        '<input type=hidden name="List-Unsubscribe" value="One-Click">'
        "<button type=submit>Stop all alerts</button></form></main></html>"
    )


@router.post(
    "/unsubscribe",
    tags=["self-service"],
    summary="Unsubscribe (RFC 8058 one-click: POST with List-Unsubscribe=One-Click)",
    responses=LINK_ERRORS,
)
async def unsubscribe(
    request: Request, token: Annotated[str, Query(max_length=500)], session: SessionDep
) -> dict[str, str]:
    recipient, _claims = await recipients.recipient_from_link(
        session, _secret(request), "unsubscribe", token
    )
    await recipients.unsubscribe(session, recipient)
    return {"status": "unsubscribed"}


@router.get(
    "/preferences",
    tags=["self-service"],
    summary="Your preferences, through the signed link in every message",
    responses=LINK_ERRORS,
)
async def get_preferences(
    request: Request, token: Annotated[str, Query(max_length=500)], session: SessionDep
) -> dict[str, object]:
    recipient, _claims = await recipients.recipient_from_link(
        session, _secret(request), "preferences", token
    )
    return {
        "recipient": recipients.out(recipient, reveal=True),
        "subscriptions": [
            _subscription_out(s).model_dump(mode="json")
            for s in await recipients.subscriptions_of(session, recipient.id)
        ],
    }


@router.put(
    "/preferences",
    tags=["self-service"],
    summary="Change your preferences through the signed link",
    responses={**LINK_ERRORS, **problem_responses(InvalidValue)},
)
async def put_preferences(
    request: Request,
    token: Annotated[str, Query(max_length=500)],
    body: PreferencesIn,
    session: SessionDep,
) -> dict[str, str]:
    recipient, _claims = await recipients.recipient_from_link(
        session, _secret(request), "preferences", token
    )
    await recipients.set_preferences(session, recipient, body)
    return {"status": "saved"}


def _cursor(created_at: dt.datetime, delivery_id: str) -> str:
    return base64.urlsafe_b64encode(
        json.dumps([created_at.isoformat(), delivery_id]).encode()
    ).decode()


@router.get(
    "/deliveries",
    tags=["deliveries"],
    summary="The delivery log (newest first), filterable by recipient, event, status, channel",
    responses={**AUTH_ERRORS, **problem_responses(InvalidValue)},
)
async def list_deliveries(
    _: EditorKey,
    session: SessionDep,
    recipient_id: Annotated[str | None, Query(max_length=32)] = None,
    event_id: Annotated[str | None, Query(max_length=200)] = None,
    status: DeliveryStatus | None = None,
    channel: Annotated[str | None, Query(pattern="^(email|sms|webhook)$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=300)] = None,
) -> DeliveryPage:
    stmt = select(Delivery).order_by(Delivery.created_at.desc(), Delivery.id.desc())
    if recipient_id:
        stmt = stmt.where(Delivery.recipient_id == recipient_id)
    if event_id:
        stmt = stmt.where(Delivery.event_id == event_id)
    if status:
        stmt = stmt.where(Delivery.status == status)
    if channel:
        stmt = stmt.where(Delivery.channel == channel)
    if cursor:
        try:
            created, last_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
            created_at = dt.datetime.fromisoformat(created)
        except Exception as exc:
            raise InvalidValue("cursor is not valid", field="query.cursor") from exc
        stmt = stmt.where(
            (Delivery.created_at < created_at)
            | ((Delivery.created_at == created_at) & (Delivery.id < last_id))
        )
    rows = list(await session.scalars(stmt.limit(limit + 1)))
    next_cursor = (
        _cursor(rows[limit - 1].created_at, rows[limit - 1].id) if len(rows) > limit else None
    )
    return DeliveryPage(
        items=[DeliveryOut.model_validate(r, from_attributes=True) for r in rows[:limit]],
        next_cursor=next_cursor,
    )
