"""Transports: e-mail over SMTP, SMS over an HTTP gateway (generic or Twilio), signed webhooks.

Real network I/O and nothing else: no business rules, no templates, no retries across time.
Every failure becomes a DeliveryError that says whether trying again later can help, with
the e-mail addresses and phone numbers in its message masked.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import email
import email.policy
import hashlib
import hmac
import ipaddress
import json
import re
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.header import Header
from email.utils import format_datetime, formataddr, make_msgid, parseaddr
from typing import Any
from urllib.parse import urlsplit

import aiosmtplib
import httpx

from services.notifications.settings import NotificationsSettings

USER_AGENT = "upr-tracker-notifications/0.1"
# Headers the channel writes itself; callers cannot replace them through OutgoingEmail.headers.
RESERVED_HEADERS = frozenset({"from", "to", "cc", "bcc", "subject", "date", "sender"})
MESSAGE_POLICY = email.policy.default
_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@((?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,})")
_PHONE = re.compile(r"\+(\d{3})(\d{1,9})(\d{3})(?!\d)")


# --- what callers hand over --------------------------------------------------------------


@dataclass
class OutgoingEmail:
    to: str
    subject: str
    text: str
    html: str | None
    headers: dict[str, str]  # e.g. List-Unsubscribe, List-Unsubscribe-Post, Message-ID


@dataclass
class OutgoingSms:
    to: str  # E.164
    text: str
    idempotency_key: str


@dataclass
class OutgoingWebhook:
    url: str
    secret: str
    payload: dict[str, Any]
    idempotency_key: str


# --- errors and personal data ------------------------------------------------------------


def mask_personal(text: str) -> str:
    """Mask e-mail addresses (a***@example.org) and E.164 numbers (+855*****678) in a text."""
    text = _EMAIL.sub(r"\1***@\2", text)
    return _PHONE.sub(lambda m: f"+{m[1]}{'*' * len(m[2])}{m[3]}", text)


class DeliveryError(Exception):
    """A message was not accepted: transient ones may succeed later, permanent ones never."""

    def __init__(
        self, message: str, *, transient: bool, retry_after_s: float | None = None
    ) -> None:
        super().__init__(mask_personal(message))
        self.transient = transient
        self.retry_after_s = retry_after_s

    @property
    def permanent(self) -> bool:
        """Whether giving up is the right call."""
        return not self.transient


class InvalidSignature(ValueError):
    """A signed request whose signature, or timestamp, does not hold."""


# --- Standard Webhooks signatures --------------------------------------------------------


def _signing_key(secret: str) -> bytes:
    # Standard Webhooks secrets look like whsec_<base64>; any other string is used as is.
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            pass
    return secret.encode()


def sign_webhook(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature value: v1,<base64 HMAC-SHA256(secret, id.timestamp.body)>."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(
    secret: str, msg_id: str, body: bytes, *, now: float | None = None
) -> dict[str, str]:
    """The webhook-id, webhook-timestamp and webhook-signature headers for a JSON body."""
    timestamp = int(time.time() if now is None else now)
    return {
        "content-type": "application/json; charset=utf-8",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign_webhook(secret, msg_id, timestamp, body),
    }


def verify_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_s: int = 300,
    now: float | None = None,
) -> None:
    """Raise InvalidSignature unless the headers sign this exact body, recently, with secret."""
    lowered = {str(k).lower(): v for k, v in headers.items()}
    try:
        msg_id = lowered["webhook-id"]
        timestamp = int(lowered["webhook-timestamp"])
        offered = lowered["webhook-signature"].split()
    except (KeyError, ValueError) as exc:
        raise InvalidSignature("missing or malformed webhook-* headers") from exc
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise InvalidSignature("the webhook-timestamp is outside the tolerance")
    expected = sign_webhook(secret, msg_id, timestamp, body).encode()
    if not any(
        hmac.compare_digest(expected, candidate.encode())
        for candidate in offered
        if candidate.startswith("v1,")
    ):
        raise InvalidSignature("no webhook-signature matches")


# --- rate limiting -----------------------------------------------------------------------


class RateLimiter:
    """A token bucket: rate_per_s on average, bursts up to burst; fair under concurrency."""

    def __init__(
        self,
        rate_per_s: float,
        burst: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        self.rate = float(rate_per_s)
        self.capacity = float(max(1, burst))
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.capacity
        self._updated = clock()

    async def acquire(self) -> None:
        """Take one token, waiting until it has accrued."""
        # Reserve before sleeping (no await in between): concurrent callers queue up behind
        # each other's reservations instead of all waking for the same token.
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        self._tokens -= 1
        if self._tokens >= 0:
            return
        try:
            await self._sleep(-self._tokens / self.rate)
        except BaseException:
            self._tokens += 1  # a cancelled waiter gives its reservation back
            raise


# --- e-mail ------------------------------------------------------------------------------


class _Connection:
    """One SMTP session, used by one sender at a time."""

    def __init__(self) -> None:
        self.client: aiosmtplib.SMTP | None = None

    @property
    def alive(self) -> bool:
        return self.client is not None and self.client.is_connected


class EmailChannel:
    """SMTP over reused connections (UPR_SMTP_CONNECTIONS of them), reconnecting as needed."""

    def __init__(self, settings: NotificationsSettings, *, pool_size: int | None = None) -> None:
        pool_size = settings.smtp_connections if pool_size is None else pool_size
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self.settings = settings
        self.pool_size = pool_size
        self.sender = parseaddr(settings.mail_from)[1] or settings.mail_from
        self.domain = self.sender.rpartition("@")[2] or "upr-tracker.local"
        self.from_header = _header("From", _address_header(settings.mail_from))
        self.sessions_opened = 0
        # Checking a connection out of this queue is what guards it: with pool_size=1 the queue
        # is a lock around the single connection.
        self._idle: asyncio.Queue[_Connection] = asyncio.Queue()
        for _ in range(pool_size):
            self._idle.put_nowait(_Connection())

    def compose(self, outgoing: OutgoingEmail) -> tuple[bytes, str]:
        """The message's bytes (7-bit safe, CRLF) and its Message-ID.

        Written directly rather than through email.message.EmailMessage: its header parsing and
        flattening cost more CPU than everything else a delivery does. The structure is fixed
        (one text part, optionally an HTML alternative), so the stdlib's encoders suffice.
        """
        extra = dict(outgoing.headers)
        given_id = next(
            (extra.pop(name) for name in list(extra) if name.lower() == "message-id"), None
        )
        message_id = given_id or make_msgid(domain=self.domain)
        lines = [
            self.from_header,
            _header("To", outgoing.to, encode=outgoing.to.isascii()),
            _header("Subject", " ".join(outgoing.subject.split())),
            _header("Date", format_datetime(dt.datetime.now(dt.UTC))),
            _header("Message-ID", message_id),
        ]
        lines += [
            _header(name, value)
            for name, value in extra.items()
            if name.lower() not in RESERVED_HEADERS
        ]
        lines.append("MIME-Version: 1.0\r\n")
        # An internationalised address travels as UTF-8 (SMTPUTF8), everything else is ASCII.
        head = "".join(lines).encode("utf-8")
        if not outgoing.html:
            return head + _text_part("plain", outgoing.text), message_id
        boundary = f"=_upr_{secrets.token_hex(12)}"
        body = b"".join(
            (
                f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'.encode(),
                f"--{boundary}\r\n".encode(),
                _text_part("plain", outgoing.text),
                f"\r\n--{boundary}\r\n".encode(),
                _text_part("html", outgoing.html),
                f"\r\n--{boundary}--\r\n".encode(),
            )
        )
        return head + body, message_id

    async def send(self, outgoing: OutgoingEmail) -> str:
        """Send one message; returns its Message-ID."""
        try:
            raw, message_id = self.compose(outgoing)
        except (ValueError, TypeError, UnicodeError) as exc:
            raise DeliveryError(
                f"e-mail to {outgoing.to} cannot be built: {type(exc).__name__}", transient=False
            ) from None
        connection = await self._idle.get()
        try:
            await self._send_on(connection, raw, outgoing.to)
        finally:
            self._idle.put_nowait(connection)
        return message_id

    async def _send_on(self, connection: _Connection, raw: bytes, to: str) -> None:
        for _ in range(2):
            fresh = not connection.alive
            if fresh:
                await self._open(connection)
            assert connection.client is not None
            try:
                options = [] if to.isascii() else ["SMTPUTF8"]
                await connection.client.sendmail(self.sender, [to], raw, mail_options=options)
                return
            except asyncio.CancelledError:
                # Cancelled mid-transaction: the session's state is unknown, never reuse it.
                connection.client.close()
                connection.client = None
                raise
            except Exception as exc:
                error, keep = _smtp_failure(exc, to)
                if not keep:
                    await _discard(connection)
                # A reused session that died while idle (server restarted, idle timeout, 421)
                # gets one more try on a fresh session; anything else is reported as is.
                if fresh or keep or not _session_gone(exc):
                    raise error from None

    async def _open(self, connection: _Connection) -> None:
        settings = self.settings
        client = aiosmtplib.SMTP(
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            timeout=settings.smtp_timeout_s,
            start_tls={"auto": None, "always": True, "never": False}[settings.smtp_starttls],
            username=settings.smtp_username or None,
            password=settings.smtp_password.get_secret_value()
            if settings.smtp_password is not None
            else None,
        )
        try:
            await client.connect()
        except aiosmtplib.SMTPAuthenticationError as exc:
            client.close()
            raise DeliveryError(
                f"SMTP login refused ({exc.code}); check UPR_SMTP_USERNAME/PASSWORD",
                transient=True,
            ) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            client.close()
            raise DeliveryError(
                f"SMTP server {settings.smtp_host}:{settings.smtp_port} unavailable: "
                f"{_describe(exc)}",
                transient=True,
            ) from None
        connection.client = client
        self.sessions_opened += 1

    async def close(self) -> None:
        """Close every connection politely (QUIT)."""
        for _ in range(self.pool_size):
            connection = await self._idle.get()
            try:
                await _discard(connection)
            finally:
                self._idle.put_nowait(connection)


_HEADER_NAME = re.compile(r"[!-9;-~]+")


def _header(name: str, value: str, *, encode: bool = True) -> str:
    """One header field, RFC 2047-encoded when not ASCII (unless not to) and folded when long."""
    if not _HEADER_NAME.fullmatch(name):
        raise ValueError(f"invalid header name {name!r}")
    if "\r" in value or "\n" in value:
        raise ValueError(f"header {name} contains a line break")
    if not encode or (value.isascii() and len(name) + len(value) < 77):
        return f"{name}: {value}\r\n"
    charset = "us-ascii" if value.isascii() else "utf-8"
    encoded = Header(value, charset, header_name=name).encode(linesep="\r\n")
    return f"{name}: {encoded}\r\n"


def _address_header(value: str) -> str:
    """An address header (From) with a non-ASCII display name encoded."""
    name, address = parseaddr(value)
    if not address:
        raise ValueError(f"not an address: {value!r}")
    return formataddr((name, address), charset="utf-8")


def _text_part(subtype: str, text: str) -> bytes:
    """A text part: 7bit when ASCII, quoted-printable when mostly Latin, base64 otherwise."""
    # Never raw 8-bit: relays without 8BITMIME would mangle Khmer.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    data = text.encode("utf-8")
    if len(data) == len(text) and max(map(len, text.split("\n")), default=0) <= 998:
        encoding, payload = "7bit", data.replace(b"\n", b"\r\n")
    elif (len(data) - len(text)) * 5 < len(text) * 2:
        # Few non-ASCII characters (each two or three bytes in UTF-8): readable as QP.
        encoding = "quoted-printable"
        payload = binascii.b2a_qp(data, istext=True).replace(b"\n", b"\r\n")
    else:
        encoding, payload = "base64", base64.encodebytes(data).replace(b"\n", b"\r\n")
    if not payload.endswith(b"\r\n"):
        payload += b"\r\n"
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        f"Content-Transfer-Encoding: {encoding}\r\n\r\n"
    ).encode() + payload


async def _discard(connection: _Connection) -> None:
    client, connection.client = connection.client, None
    if client is None:
        return
    if client.is_connected:
        try:
            await asyncio.wait_for(client.quit(), timeout=2)
        except Exception:
            client.close()
    else:
        client.close()


def _session_gone(exc: BaseException) -> bool:
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return exc.code == 421
    return isinstance(exc, ConnectionError | aiosmtplib.SMTPServerDisconnected)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return f"{exc.code} {exc.message}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return f"{type(exc).__name__}: {exc}"


def _smtp_failure(exc: BaseException, to: str) -> tuple[DeliveryError, bool]:
    """The DeliveryError for an exception raised while sending, and whether the session lives."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        details = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
        permanent = bool(codes) and all(code >= 500 for code in codes)
        return DeliveryError(f"SMTP refused {to}: {details}", transient=not permanent), True
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused):
        message = f"SMTP refused {to}: {exc.code} {exc.message}"
        return DeliveryError(message, transient=exc.code < 500), True
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        # 552 on MAIL FROM (SIZE) is about this message; other refusals of the sender are
        # configuration (UPR_MAIL_FROM), which an operator can fix before the retries run out.
        message = f"SMTP refused the sender: {exc.code} {exc.message}"
        return DeliveryError(message, transient=exc.code != 552), exc.code != 421
    if isinstance(exc, aiosmtplib.SMTPDataError):
        message = f"SMTP refused the message to {to}: {exc.code} {exc.message}"
        return DeliveryError(message, transient=exc.code < 500), exc.code != 421
    if isinstance(exc, aiosmtplib.SMTPNotSupported) and "SMTPUTF8" in str(exc):
        message = f"the SMTP server cannot take the non-ASCII address {to}"
        return DeliveryError(message, transient=False), True
    if isinstance(exc, ValueError):
        return DeliveryError(f"invalid address {to}: {exc}", transient=False), True
    if isinstance(exc, aiosmtplib.SMTPException | OSError | TimeoutError):
        return DeliveryError(f"SMTP failed: {_describe(exc)}", transient=True), False
    return DeliveryError(f"SMTP failed: {type(exc).__name__}", transient=True), False


# --- HTTP transports ---------------------------------------------------------------------


def _http_client(timeout_s: float, auth: tuple[str, str] | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=timeout_s,
        auth=auth,
        follow_redirects=False,
        headers={"user-agent": USER_AGENT},
    )


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _provider_code(response: httpx.Response) -> str:
    # A provider's own error code (Twilio 21211...) helps; free text may hold personal data.
    try:
        code = response.json().get("code")
    except (ValueError, AttributeError):
        return ""
    if isinstance(code, int) or (isinstance(code, str) and re.fullmatch(r"[\w.-]{1,40}", code)):
        return f" (code {code})"
    return ""


async def _post(
    client: httpx.AsyncClient, url: str, *, what: str, who: str, **kwargs: Any
) -> httpx.Response:
    """POST and map every failure to a DeliveryError."""
    try:
        response = await client.post(url, **kwargs)
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise DeliveryError(
            f"{what} URL is not usable: {type(exc).__name__}", transient=False
        ) from None
    except httpx.TimeoutException:
        raise DeliveryError(f"{what} timed out for {who}", transient=True) from None
    except httpx.HTTPError as exc:
        raise DeliveryError(
            f"{what} unreachable for {who}: {type(exc).__name__}", transient=True
        ) from None
    status = response.status_code
    if 200 <= status < 300:
        return response
    transient = status >= 500 or status in (408, 425, 429)
    raise DeliveryError(
        f"{what} answered HTTP {status}{_provider_code(response)} for {who}",
        transient=transient,
        retry_after_s=_retry_after(response.headers.get("retry-after")),
    )


def _json_field(response: httpx.Response, name: str) -> str | None:
    try:
        value = response.json().get(name)
    except (ValueError, AttributeError):
        return None
    return str(value) if value not in (None, "") else None


class SmsGatewayChannel:
    """A generic JSON SMS gateway: POST {to, from, text, id}, signed the Standard Webhooks way."""

    def __init__(self, settings: NotificationsSettings) -> None:
        self.url = settings.sms_gateway_url
        self.sender = settings.sms_from
        self._secret = settings.sms_gateway_secret.get_secret_value()
        self._client = _http_client(settings.webhook_timeout_s)

    async def send(self, sms: OutgoingSms) -> str:
        """POST one message; returns the gateway's id (its JSON "id", else the idempotency key)."""
        body = json.dumps(
            {"to": sms.to, "from": self.sender, "text": sms.text, "id": sms.idempotency_key},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        response = await _post(
            self._client,
            self.url,
            what="SMS gateway",
            who=sms.to,
            content=body,
            headers=signed_headers(self._secret, sms.idempotency_key, body),
        )
        return _json_field(response, "id") or sms.idempotency_key

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()


class TwilioChannel:
    """A Twilio-compatible API: form POST (To, From, Body) with basic auth sid:token."""

    def __init__(self, settings: NotificationsSettings) -> None:
        sid = settings.twilio_account_sid
        token = settings.twilio_auth_token
        if not sid or token is None:
            raise ValueError("the twilio provider needs UPR_TWILIO_ACCOUNT_SID and _AUTH_TOKEN")
        base = settings.twilio_base_url.rstrip("/")
        self.url = f"{base}/2010-04-01/Accounts/{sid}/Messages.json"
        self.sender = settings.sms_from
        self._client = _http_client(
            settings.webhook_timeout_s, auth=(sid, token.get_secret_value())
        )

    async def send(self, sms: OutgoingSms) -> str:
        """POST one message; returns the provider's "sid"."""
        response = await _post(
            self._client,
            self.url,
            what="SMS provider",
            who=sms.to,
            data={"To": sms.to, "From": self.sender, "Body": sms.text},
        )
        return _json_field(response, "sid") or sms.idempotency_key

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()


class WebhookChannel:
    """POST a JSON payload to an integrator's URL, signed with the integrator's secret."""

    def __init__(self, settings: NotificationsSettings) -> None:
        self._client = _http_client(settings.webhook_timeout_s)
        self.allow_private = settings.webhooks_may_reach_private_networks

    async def send(self, hook: OutgoingWebhook) -> str:
        """POST one payload; returns the idempotency key (the webhook-id the receiver saw)."""
        if not self.allow_private:
            await refuse_private_destination(hook.url)
        body = json.dumps(
            hook.payload, ensure_ascii=False, separators=(",", ":"), default=str
        ).encode()
        await _post(
            self._client,
            hook.url,
            what="webhook",
            who=urlsplit(hook.url).hostname or "?",
            content=body,
            headers=signed_headers(hook.secret, hook.idempotency_key, body),
        )
        return hook.idempotency_key

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()


async def refuse_private_destination(url: str) -> None:
    """Raise a permanent DeliveryError unless every address the URL's host has is public.

    An integrator's webhook URL must not turn the service into a proxy towards the internal
    network (OWASP API7, SSRF): loopback, private, link-local (cloud metadata), shared and
    reserved addresses are refused. Checked right before each request.
    """
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        raise DeliveryError("webhook URL has no host", transient=False)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise DeliveryError(
            f"webhook host {host} does not resolve: {exc}", transient=True
        ) from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise DeliveryError(
                f"webhook host {host} resolves to a non-public address ({address}); set "
                "UPR_WEBHOOK_ALLOW_PRIVATE_NETWORKS=true to allow it",
                transient=False,
            )


def sms_channel(settings: NotificationsSettings) -> SmsGatewayChannel | TwilioChannel:
    """The SMS transport UPR_SMS_PROVIDER chooses."""
    if settings.sms_provider == "twilio":
        return TwilioChannel(settings)
    return SmsGatewayChannel(settings)
