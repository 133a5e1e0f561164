"""Transports: e-mail over SMTP, SMS over an HTTP gateway (generic or Twilio), webhooks."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import aiosmtplib
import httpx

from services.notifications.settings import NotificationsSettings
from shared.logs import mask


@dataclass
class OutgoingEmail:
    to: str
    subject: str
    text: str
    html: str | None
    headers: dict[str, str]


@dataclass
class OutgoingSms:
    to: str
    text: str
    idempotency_key: str


@dataclass
class OutgoingWebhook:
    url: str
    secret: str
    payload: dict[str, Any]
    idempotency_key: str


class DeliveryError(Exception):
    """A message was not accepted; transient ones are retried, permanent ones are not."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(mask(message))
        self.transient = transient


class InvalidSignature(ValueError):
    """A webhook or gateway callback whose signature, or timestamp, does not hold."""


def sign_webhook(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>."""
    key = secret.encode()
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(
    secret: str, msg_id: str, body: bytes, now: float | None = None
) -> dict[str, str]:
    """The webhook-id, webhook-timestamp and webhook-signature headers for a body."""
    timestamp = int(now if now is not None else time.time())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign_webhook(secret, msg_id, timestamp, body),
        "content-type": "application/json",
    }


def verify_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_s: int = 300,
    now: float | None = None,
) -> None:
    """Raise InvalidSignature unless the headers sign this body recently with this secret."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        msg_id = lowered["webhook-id"]
        timestamp = int(lowered["webhook-timestamp"])
        signatures = lowered["webhook-signature"].split()
    except (KeyError, ValueError) as exc:
        raise InvalidSignature("missing or malformed signature headers") from exc
    current = now if now is not None else time.time()
    if abs(current - timestamp) > tolerance_s:
        raise InvalidSignature("the signature's timestamp is too old or in the future")
    expected = sign_webhook(secret, msg_id, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise InvalidSignature("the signature does not match")


class RateLimiter:
    """A token bucket: at most rate_per_s on average, bursts up to burst."""

    def __init__(self, rate_per_s: float, burst: int = 1) -> None:
        self.rate = rate_per_s
        self.capacity = max(1, burst)
        self.tokens = float(self.capacity)
        self.updated = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait for a token."""
        async with self._lock:
            while True:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)


class EmailChannel:
    """SMTP with a small pool of reused connections (STARTTLS and login as configured)."""

    def __init__(self, settings: NotificationsSettings, *, connections: int = 4) -> None:
        self.settings = settings
        self._pool: asyncio.Queue[aiosmtplib.SMTP | None] = asyncio.Queue()
        for _ in range(connections):
            self._pool.put_nowait(None)

    def _client(self) -> aiosmtplib.SMTP:
        starttls = self.settings.smtp_starttls
        return aiosmtplib.SMTP(
            hostname=self.settings.smtp_host,
            port=self.settings.smtp_port,
            timeout=self.settings.smtp_timeout_s,
            start_tls=None if starttls == "auto" else starttls == "always",
            username=self.settings.smtp_username,
            password=self.settings.smtp_password.get_secret_value()
            if self.settings.smtp_password
            else None,
        )

    def _message(self, email: OutgoingEmail) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.settings.mail_from
        message["To"] = email.to
        message["Subject"] = email.subject
        message["Date"] = formatdate(localtime=False)
        headers = dict(email.headers)
        message["Message-ID"] = headers.pop("Message-ID", None) or make_msgid("upr")
        for name, value in headers.items():
            message[name] = value
        message.set_content(email.text, charset="utf-8")
        if email.html:
            message.add_alternative(email.html, subtype="html", charset="utf-8")
        return message

    async def send(self, email: OutgoingEmail) -> str:
        """Send one message over a pooled connection; returns its Message-ID."""
        message = self._message(email)
        client = await self._pool.get()
        try:
            if client is None or not client.is_connected:
                client = self._client()
                await client.connect()
            await client.send_message(message)
            return str(message["Message-ID"])
        except aiosmtplib.SMTPRecipientsRefused as exc:
            client = await _discard(client)
            raise DeliveryError(f"recipient refused: {exc}", transient=False) from exc
        except aiosmtplib.SMTPResponseException as exc:
            client = await _discard(client)
            raise DeliveryError(
                f"SMTP {exc.code}: {exc.message}", transient=exc.code < 500
            ) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            client = await _discard(client)
            raise DeliveryError(f"SMTP unavailable: {type(exc).__name__}", transient=True) from exc
        finally:
            self._pool.put_nowait(client)

    async def close(self) -> None:
        """Close every pooled connection."""
        while not self._pool.empty():
            await _discard(self._pool.get_nowait())


async def _discard(client: aiosmtplib.SMTP | None) -> None:
    if client is not None and client.is_connected:
        try:
            await client.quit()
        except Exception:
            client.close()
    return None


def _http_error(response: httpx.Response, what: str) -> DeliveryError:
    transient = response.status_code >= 500 or response.status_code in (408, 429)
    return DeliveryError(f"{what} answered {response.status_code}", transient=transient)


class SmsGatewayChannel:
    """A generic JSON SMS gateway, signed the Standard Webhooks way."""

    def __init__(self, settings: NotificationsSettings) -> None:
        self.url = settings.sms_gateway_url
        self.secret = settings.sms_gateway_secret.get_secret_value()
        self.sender = settings.sms_from
        self.client = httpx.AsyncClient(timeout=settings.webhook_timeout_s)

    async def send(self, sms: OutgoingSms) -> str | None:
        """POST the message; returns the gateway's id."""
        body = json.dumps(
            {"id": sms.idempotency_key, "to": sms.to, "from": self.sender, "text": sms.text},
            ensure_ascii=False,
        ).encode()
        try:
            response = await self.client.post(
                self.url,
                content=body,
                headers=signed_headers(self.secret, sms.idempotency_key, body),
            )
        except httpx.HTTPError as exc:
            raise DeliveryError(
                f"SMS gateway unreachable: {type(exc).__name__}", transient=True
            ) from exc
        if response.status_code >= 300:
            raise _http_error(response, "SMS gateway")
        try:
            return str(response.json().get("id") or sms.idempotency_key)
        except ValueError:
            return sms.idempotency_key

    async def close(self) -> None:
        await self.client.aclose()


class TwilioChannel:
    """A Twilio-compatible SMS API (form POST with basic auth)."""

    def __init__(self, settings: NotificationsSettings) -> None:
        sid = settings.twilio_account_sid or ""
        token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else ""
        self.url = f"{settings.twilio_base_url.rstrip('/')}/2010-04-01/Accounts/{sid}/Messages.json"
        self.sender = settings.sms_from
        self.client = httpx.AsyncClient(timeout=settings.webhook_timeout_s, auth=(sid, token))

    async def send(self, sms: OutgoingSms) -> str | None:
        """POST the message; returns Twilio's sid."""
        try:
            response = await self.client.post(
                self.url,
                data={"To": sms.to, "From": self.sender, "Body": sms.text},
                headers={"I-Twilio-Idempotency-Token": sms.idempotency_key},
            )
        except httpx.HTTPError as exc:
            raise DeliveryError(
                f"SMS provider unreachable: {type(exc).__name__}", transient=True
            ) from exc
        if response.status_code >= 300:
            raise _http_error(response, "SMS provider")
        return str(response.json().get("sid"))

    async def close(self) -> None:
        await self.client.aclose()


class WebhookChannel:
    """POST a signed JSON payload to an integrator's URL."""

    def __init__(self, settings: NotificationsSettings) -> None:
        self.client = httpx.AsyncClient(timeout=settings.webhook_timeout_s)

    async def send(self, hook: OutgoingWebhook) -> str | None:
        """POST the payload signed with the recipient's secret."""
        body = json.dumps(hook.payload, ensure_ascii=False, default=str).encode()
        try:
            response = await self.client.post(
                hook.url,
                content=body,
                headers=signed_headers(hook.secret, hook.idempotency_key, body),
            )
        except httpx.HTTPError as exc:
            raise DeliveryError(
                f"webhook unreachable: {type(exc).__name__}", transient=True
            ) from exc
        if response.status_code >= 300:
            raise _http_error(response, "webhook")
        return hook.idempotency_key

    async def close(self) -> None:
        await self.client.aclose()


def sms_channel(settings: NotificationsSettings) -> SmsGatewayChannel | TwilioChannel:
    """The SMS transport the settings choose."""
    return (
        TwilioChannel(settings)
        if settings.sms_provider == "twilio"
        else SmsGatewayChannel(settings)
    )
