"""Signed links: unsubscribe, preferences and confirmation, without an account."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from shared.http import ProblemError

Purpose = Literal["unsubscribe", "preferences", "confirm"]
MAX_AGE_S: dict[str, int] = {
    "unsubscribe": 400 * 24 * 3600,  # must keep working for a year of messages
    "preferences": 30 * 24 * 3600,
    "confirm": 7 * 24 * 3600,
}


class InvalidLink(ProblemError):
    status = 403
    title = "Invalid or expired link"


@dataclass(frozen=True)
class LinkClaims:
    """What a link token says: whose, which version of their links, which subscription."""

    recipient_id: str
    version: int
    subscription_id: str | None = None


def _serializer(secret: str, purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=f"upr-notifications-{purpose}")


def make_token(
    secret: str,
    purpose: Purpose,
    recipient_id: str,
    version: int,
    subscription_id: str | None = None,
) -> str:
    """A signed, timestamped token for one recipient and purpose."""
    payload = {"r": recipient_id, "v": version, "s": subscription_id}
    return _serializer(secret, purpose).dumps(payload)


def read_token(secret: str, purpose: Purpose, token: str) -> LinkClaims:
    """The claims of a token, or InvalidLink when it is forged, altered or too old."""
    try:
        payload = _serializer(secret, purpose).loads(token, max_age=MAX_AGE_S[purpose])
    except SignatureExpired as exc:
        raise InvalidLink("this link has expired; ask for a new one", field="query.token") from exc
    except BadSignature as exc:
        raise InvalidLink("this link is not valid", field="query.token") from exc
    if not isinstance(payload, dict) or "r" not in payload:
        raise InvalidLink("this link is not valid", field="query.token")
    return LinkClaims(str(payload["r"]), int(payload.get("v", 0)), payload.get("s"))
