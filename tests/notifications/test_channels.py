"""Transports against real servers: an SMTP server and an HTTP SMS gateway."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from cli.sinks import SmsSink, SmtpSink
from services.notifications.channels import (
    DeliveryError,
    EmailChannel,
    InvalidSignature,
    OutgoingEmail,
    OutgoingSms,
    OutgoingWebhook,
    RateLimiter,
    SmsGatewayChannel,
    TwilioChannel,
    WebhookChannel,
    signed_headers,
    verify_webhook,
)
from services.notifications.settings import NotificationsSettings

SECRET = "gateway-secret-0123456789abcdef"


def settings(**overrides) -> NotificationsSettings:
    values = {
        "environment": "test",
        "secret_key": "x" * 32,
        "sms_gateway_secret": SECRET,
        "smtp_starttls": "never",
        "smtp_timeout_s": 2,
        **overrides,
    }
    return NotificationsSettings(**values)


def email(to: str = "embassy@example.org") -> OutgoingEmail:
    return OutgoingEmail(
        to=to,
        subject="UPR 118.17: ស្ថានភាពបានផ្លាស់ប្តូរ",
        text="អនុសាសន៍ 118.17 កំពុងអនុវត្ត",
        html="<p>អនុសាសន៍ 118.17</p>",
        headers={"Message-ID": "<d1@upr-tracker>", "List-Unsubscribe": "<https://x/u>"},
    )


async def test_email_parts_headers_and_khmer() -> None:
    sink = SmtpSink().start()
    channel = EmailChannel(settings(smtp_port=sink.port), connections=1)
    try:
        for n in range(3):
            await channel.send(email(f"r{n}@example.org"))
        [first] = sink.messages_to("r0@example.org")
        assert str(first["Subject"]) == "UPR 118.17: ស្ថានភាពបានផ្លាស់ប្តូរ"
        assert first.get_body(("plain",)).get_content().strip() == "អនុសាសន៍ 118.17 កំពុងអនុវត្ត"
        assert "118.17" in first.get_body(("html",)).get_content()
        assert first["Message-ID"] == "<d1@upr-tracker>"
        assert first["List-Unsubscribe"] == "<https://x/u>"
    finally:
        await channel.close()
        sink.stop()


async def test_email_outage_is_transient_and_recovers() -> None:
    sink = SmtpSink().start()
    channel = EmailChannel(settings(smtp_port=sink.port), connections=1)
    try:
        await channel.send(email())
        sink.stop()
        with pytest.raises(DeliveryError) as failure:
            await channel.send(email("secret.person@example.org"))
        assert failure.value.transient
        assert "secret.person@example.org" not in str(failure.value)
        sink.start()
        await channel.send(email("after@example.org"))
        assert len(sink.messages_to("after@example.org")) == 1
    finally:
        await channel.close()
        sink.stop()


async def test_sms_gateway_signs_and_classifies_errors() -> None:
    sink = SmsSink(secret=SECRET).start()
    channel = SmsGatewayChannel(settings(sms_gateway_url=sink.url))
    try:
        provider_id = await channel.send(OutgoingSms("+85512345678", "សួស្តី 118.17", "k1"))
        assert provider_id and sink.requests[0]["text"] == "សួស្តី 118.17"
        assert sink.requests[0]["headers"]["webhook-id"] == "k1"
        sink.fail_next(1)
        with pytest.raises(DeliveryError) as busy:
            await channel.send(OutgoingSms("+85512345678", "x", "k2"))
        assert busy.value.transient
        wrong = SmsGatewayChannel(
            settings(sms_gateway_url=sink.url, sms_gateway_secret="another-secret-0123456789")
        )
        with pytest.raises(DeliveryError) as refused:
            await wrong.send(OutgoingSms("+85512345678", "x", "k3"))
        assert not refused.value.transient and "+85512345678" not in str(refused.value)
        await wrong.close()
    finally:
        await channel.close()
        sink.stop()


async def test_twilio_compatible_provider() -> None:
    sink = SmsSink().start()
    channel = TwilioChannel(
        settings(
            sms_provider="twilio",
            twilio_base_url=f"http://127.0.0.1:{sink.port}",
            twilio_account_sid="AC123",
            twilio_auth_token="token-0123456789",
        )
    )
    try:
        sid = await channel.send(OutgoingSms("+85512345678", "hello", "k1"))
        assert sid and sid.startswith("SM")
        assert sink.requests[0]["to"] == "+85512345678"
        assert sink.requests[0]["headers"]["authorization"].startswith("Basic ")
    finally:
        await channel.close()
        sink.stop()


async def test_webhooks_are_signed_and_verifiable() -> None:
    sink = SmsSink(secret=SECRET).start()  # any signed JSON endpoint will do
    channel = WebhookChannel(settings())
    try:
        await channel.send(
            OutgoingWebhook(sink.url, SECRET, {"to": "integrator", "text": "hi", "id": "w1"}, "w1")
        )
        assert sink.requests[0]["id"] == "w1"
    finally:
        await channel.close()
        sink.stop()
    body = json.dumps({"a": 1}).encode()
    headers = signed_headers(SECRET, "m1", body, now=1_000_000)
    verify_webhook(SECRET, headers, body, now=1_000_100)
    with pytest.raises(InvalidSignature):
        verify_webhook(SECRET, headers, body, now=1_000_000 + 301)
    with pytest.raises(InvalidSignature):
        verify_webhook(SECRET, headers, body + b" ", now=1_000_000)
    with pytest.raises(InvalidSignature):
        verify_webhook("other-secret", headers, body, now=1_000_000)


async def test_rate_limiter_spaces_requests() -> None:
    limiter = RateLimiter(20.0, burst=1)
    started = time.monotonic()
    await asyncio.gather(*(limiter.acquire() for _ in range(11)))
    # Ten waits of 1/20 s each: the bucket holds one token at a time.
    assert time.monotonic() - started >= 0.45
