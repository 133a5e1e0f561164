"""Transports against real servers: the SMTP sink, the SMS sink and a small webhook receiver."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

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
    mask_personal,
    sign_webhook,
    signed_headers,
    sms_channel,
    verify_webhook,
)
from services.notifications.settings import NotificationsSettings

SECRET = "gateway-secret-0123456789abcdef"
KHMER_SUBJECT = "UPR 118.17៖ ស្ថានភាពបានផ្លាស់ប្តូរ"
KHMER_TEXT = "ស្ថានភាពនៃអនុសាសន៍ 118.17 បានផ្លាស់ប្តូរពី «មិនទាន់ចាប់ផ្តើម» ទៅ «កំពុងអនុវត្ត»។"
PHONE = "+85512345678"


def settings(**overrides: Any) -> NotificationsSettings:
    values: dict[str, Any] = {
        "environment": "test",
        "secret_key": "x" * 32,
        "sms_gateway_secret": SECRET,
        "smtp_starttls": "auto",  # the sink offers no STARTTLS: auto must go on in clear
        "smtp_timeout_s": 2,
        "webhook_timeout_s": 2,
        **overrides,
    }
    return NotificationsSettings(**values)


def email(to: str = "embassy@example.org", **headers: str) -> OutgoingEmail:
    return OutgoingEmail(
        to=to,
        subject=KHMER_SUBJECT,
        text=KHMER_TEXT,
        html=f'<!DOCTYPE html><html lang="km"><body><p>{KHMER_TEXT}</p></body></html>',
        headers={
            "List-Unsubscribe": "<https://upr.example/v1/unsubscribe?token=u>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            **headers,
        },
    )


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def sms_sink() -> Iterator[SmsSink]:
    sink = SmsSink(secret=SECRET).start()
    yield sink
    sink.stop()


# --- e-mail ------------------------------------------------------------------------------


async def test_email_parts_headers_khmer_and_one_session(smtp: SmtpSink) -> None:
    channel = EmailChannel(settings(smtp_port=smtp.port))
    try:
        ids = [
            await channel.send(email(f"r{n}@example.org", **{"Message-ID": f"<d{n}@upr-tracker>"}))
            for n in range(3)
        ]
        assert ids == ["<d0@upr-tracker>", "<d1@upr-tracker>", "<d2@upr-tracker>"]
        # Three messages over one reused SMTP session.
        assert smtp.sessions == 1 and channel.sessions_opened == 1
        [first] = smtp.messages_to("R0@example.org")
        assert first.get_content_type() == "multipart/alternative"
        assert str(first["Subject"]) == KHMER_SUBJECT
        assert first.get_body(("plain",)).get_content().strip() == KHMER_TEXT
        html = first.get_body(("html",)).get_content()
        assert KHMER_TEXT in html and 'lang="km"' in html
        assert first["Message-ID"] == "<d0@upr-tracker>"
        assert first["From"] == "UPR Tracker <alerts@upr-tracker.local>"
        assert first["To"] == "r0@example.org" and first["Date"]
        assert first["List-Unsubscribe"] == "<https://upr.example/v1/unsubscribe?token=u>"
        assert first["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert smtp.received[0].recipients == ["r0@example.org"]
        assert smtp.received[0].mail_from == "alerts@upr-tracker.local"
        raw = smtp.received[0].raw
        assert raw.isascii() and b"Content-Transfer-Encoding: 8bit" not in raw
    finally:
        await channel.close()


async def test_email_encodings_survive_the_trip(smtp: SmtpSink) -> None:
    channel = EmailChannel(settings(smtp_port=smtp.port, mail_from="ក្រសួង UPR <upr@example.org>"))
    latin = "Status: “in progress”.\n.a line that starts with a dot\n" + "word " * 300
    long_subject = "Recommendation 118.17 changed status " * 4 + KHMER_SUBJECT
    try:
        await channel.send(OutgoingEmail("qp@example.org", long_subject, latin, None, {}))
        await channel.send(OutgoingEmail("ascii@example.org", "Hi", "line\r\n.\r\nend", None, {}))
        [qp] = smtp.messages_to("qp@example.org")
        assert qp["Content-Transfer-Encoding"] == "quoted-printable"
        # SMTP carries CRLF; the parser keeps it in decoded text, mail clients do not.
        assert qp.get_content().replace("\r\n", "\n").strip() == latin.strip()
        assert str(qp["Subject"]) == " ".join(long_subject.split())
        assert str(qp["From"]) == "ក្រសួង UPR <upr@example.org>"
        [ascii_mail] = smtp.messages_to("ascii@example.org")
        assert ascii_mail["Content-Transfer-Encoding"] == "7bit"
        assert ascii_mail.get_content().replace("\r\n", "\n") == "line\n.\nend\n"
        assert all(len(line) <= 998 for line in smtp.received[0].raw.split(b"\r\n"))
    finally:
        await channel.close()


async def test_email_without_message_id_gets_one_and_plain_text_alone(smtp: SmtpSink) -> None:
    channel = EmailChannel(settings(smtp_port=smtp.port))
    try:
        message_id = await channel.send(OutgoingEmail("plain@example.org", "Hi", "Hello", None, {}))
        assert message_id.startswith("<") and message_id.endswith("@upr-tracker.local>")
        [mail] = smtp.messages_to("plain@example.org")
        assert mail["Message-ID"] == message_id and mail.get_content_type() == "text/plain"
    finally:
        await channel.close()


async def test_email_outage_is_transient_then_reconnects(smtp: SmtpSink) -> None:
    channel = EmailChannel(settings(smtp_port=smtp.port))
    try:
        await channel.send(email("before@example.org"))
        smtp.stop()
        with pytest.raises(DeliveryError) as down:
            await channel.send(email("secret.person@example.org"))
        assert down.value.transient and "secret.person@example.org" not in str(down.value)
        smtp.start()
        await channel.send(email("after@example.org"))
        assert len(smtp.messages_to("after@example.org")) == 1
        # Restarted while the channel idled: the stale session is replaced without an error.
        smtp.stop()
        smtp.start()
        await channel.send(email("after.restart@example.org"))
        assert len(smtp.messages_to("after.restart@example.org")) == 1
        assert channel.sessions_opened == 3 and smtp.sessions == 3
    finally:
        await channel.close()


async def test_refused_recipient_is_permanent_masked_and_keeps_the_session(smtp: SmtpSink) -> None:
    smtp.reject["nobody@example.org"] = "550 5.1.1 <nobody@example.org>: mailbox unavailable"
    smtp.reject["full@example.org"] = "452 4.2.2 <full@example.org>: mailbox full"
    channel = EmailChannel(settings(smtp_port=smtp.port))
    try:
        with pytest.raises(DeliveryError) as refused:
            await channel.send(email("nobody@example.org"))
        assert refused.value.permanent
        assert "nobody@example.org" not in str(refused.value) and "n***@example.org" in str(
            refused.value
        )
        with pytest.raises(DeliveryError) as later:
            await channel.send(email("full@example.org"))
        assert later.value.transient and "full@example.org" not in str(later.value)
        await channel.send(email("fine@example.org"))
        assert len(smtp.messages_to("fine@example.org")) == 1 and channel.sessions_opened == 1
    finally:
        await channel.close()


async def test_email_login() -> None:
    sink = SmtpSink(credentials=("upr", "s3cret-pass")).start()
    good = EmailChannel(
        settings(smtp_port=sink.port, smtp_username="upr", smtp_password="s3cret-pass")
    )
    bad = EmailChannel(
        settings(smtp_port=sink.port, smtp_username="upr", smtp_password="wrong-pass")
    )
    anonymous = EmailChannel(settings(smtp_port=sink.port))
    try:
        await good.send(email("logged.in@example.org"))
        assert len(sink.messages_to("logged.in@example.org")) == 1
        with pytest.raises(DeliveryError) as refused:
            await bad.send(email())
        assert refused.value.transient and "wrong-pass" not in str(refused.value)
        with pytest.raises(DeliveryError):
            await anonymous.send(email())
    finally:
        for channel in (good, bad, anonymous):
            await channel.close()
        sink.stop()


async def test_starttls_always_needs_a_server_that_offers_it(smtp: SmtpSink) -> None:
    channel = EmailChannel(settings(smtp_port=smtp.port, smtp_starttls="always"))
    try:
        with pytest.raises(DeliveryError) as failure:
            await channel.send(email())
        assert failure.value.transient
        assert smtp.messages == []
    finally:
        await channel.close()


async def test_header_injection_is_a_permanent_error(smtp: SmtpSink) -> None:
    channel = EmailChannel(settings(smtp_port=smtp.port))
    try:
        with pytest.raises(DeliveryError) as failure:
            await channel.send(email(**{"X-Note": "a\r\nBcc: victim@example.org"}))
        assert failure.value.permanent and smtp.messages == []
    finally:
        await channel.close()


async def test_a_pool_of_connections(smtp: SmtpSink) -> None:
    channel = EmailChannel(settings(smtp_port=smtp.port), pool_size=3)
    try:
        await asyncio.gather(*(channel.send(email(f"p{n}@example.org")) for n in range(9)))
        assert len(smtp.messages) == 9
        assert 1 <= smtp.sessions <= 3 and channel.sessions_opened <= 3
    finally:
        await channel.close()


def test_the_smtp_sink_writes_eml_files(tmp_path) -> None:
    async def send() -> None:
        channel = EmailChannel(settings(smtp_port=sink.port))
        try:
            await channel.send(email("file@example.org"))
        finally:
            await channel.close()

    with SmtpSink(folder=tmp_path / "mail") as sink:
        asyncio.run(send())
    [written] = list((tmp_path / "mail").glob("*-1.eml"))
    assert b"file@example.org" in written.read_bytes()


# --- SMS ---------------------------------------------------------------------------------


async def test_sms_gateway_is_signed_and_classifies_errors(sms_sink: SmsSink) -> None:
    channel = SmsGatewayChannel(settings(sms_gateway_url=sms_sink.url))
    try:
        provider_id = await channel.send(OutgoingSms(PHONE, "សួស្តី 118.17", "k1"))
        [request] = sms_sink.requests
        assert provider_id == request["provider_id"] and provider_id.startswith("gw-")
        assert request["text"] == "សួស្តី 118.17" and request["to"] == PHONE
        assert request["id"] == "k1" and request["from"] == "UPRTracker"
        assert request["headers"]["webhook-id"] == "k1"
        assert request["headers"]["webhook-signature"].startswith("v1,")

        sms_sink.fail_next(1)
        with pytest.raises(DeliveryError) as busy:
            await channel.send(OutgoingSms(PHONE, "x", "k2"))
        assert busy.value.transient and "503" in str(busy.value)
        assert PHONE not in str(busy.value) and "+855*****678" in str(busy.value)

        sms_sink.fail_next(1, status=429)
        with pytest.raises(DeliveryError) as throttled:
            await channel.send(OutgoingSms(PHONE, "x", "k3"))
        assert throttled.value.transient

        sms_sink.fail_next(1, status=422)
        with pytest.raises(DeliveryError) as invalid:
            await channel.send(OutgoingSms(PHONE, "x", "k4"))
        assert invalid.value.permanent
    finally:
        await channel.close()
    wrong = SmsGatewayChannel(
        settings(sms_gateway_url=sms_sink.url, sms_gateway_secret="another-secret-0123456789")
    )
    try:
        with pytest.raises(DeliveryError) as refused:
            await wrong.send(OutgoingSms(PHONE, "x", "k5"))
        assert refused.value.permanent and "401" in str(refused.value)
        assert PHONE not in str(refused.value)
    finally:
        await wrong.close()
    assert len(sms_sink.requests) == 1


async def test_sms_gateway_down_is_transient() -> None:
    sink = SmsSink(secret=SECRET).start()
    url = sink.url
    sink.stop()
    channel = SmsGatewayChannel(settings(sms_gateway_url=url))
    try:
        with pytest.raises(DeliveryError) as down:
            await channel.send(OutgoingSms(PHONE, "x", "k1"))
        assert down.value.transient and PHONE not in str(down.value)
    finally:
        await channel.close()


async def test_twilio_compatible_provider() -> None:
    sink = SmsSink(secret="token-0123456789").start()
    twilio = {
        "sms_provider": "twilio",
        "twilio_base_url": sink.base_url,
        "twilio_account_sid": "AC123",
    }
    channel = sms_channel(settings(**twilio, twilio_auth_token="token-0123456789"))
    wrong = TwilioChannel(settings(**twilio, twilio_auth_token="not-the-token-000"))
    try:
        assert isinstance(channel, TwilioChannel)
        sid = await channel.send(OutgoingSms(PHONE, "ស្ថានភាព 118.17", "k1"))
        [request] = sink.requests
        assert sid == request["provider_id"] and sid.startswith("SM")
        assert request["route"] == "twilio" and request["to"] == PHONE
        assert request["text"] == "ស្ថានភាព 118.17" and request["from"] == "UPRTracker"
        user = base64.b64decode(request["headers"]["authorization"].split()[1]).decode()
        assert user == "AC123:token-0123456789"
        with pytest.raises(DeliveryError) as refused:
            await wrong.send(OutgoingSms(PHONE, "x", "k2"))
        assert refused.value.permanent and "code 20003" in str(refused.value)
        sink.fail_next(1, status=429)
        with pytest.raises(DeliveryError) as throttled:
            await channel.send(OutgoingSms(PHONE, "x", "k3"))
        assert throttled.value.transient
    finally:
        await channel.close()
        await wrong.close()
        sink.stop()


def test_twilio_needs_credentials_and_the_gateway_is_the_default() -> None:
    with pytest.raises(ValueError):
        TwilioChannel(settings(sms_provider="twilio"))
    assert isinstance(sms_channel(settings()), SmsGatewayChannel)


def test_the_sms_sink_works_from_sync_code_and_writes_json(tmp_path) -> None:
    import httpx

    with SmsSink(folder=tmp_path / "sms") as sink:
        body = json.dumps({"to": PHONE, "text": "hi", "id": "s1"}).encode()
        response = httpx.post(sink.url, content=body, headers={"content-type": "application/json"})
        assert response.status_code == 200 and response.json()["id"].startswith("gw-")
    [written] = list((tmp_path / "sms").glob("*-1.json"))
    assert json.loads(written.read_text(encoding="utf-8"))["to"] == PHONE


# --- webhooks ----------------------------------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]]
    status = 204

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        self.server.received.append((dict(self.headers.items()), body))  # type: ignore[attr-defined]
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.received = []  # type: ignore[attr-defined]
    server.status = 204  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


async def test_webhook_signature_round_trip(receiver: ThreadingHTTPServer) -> None:
    url = f"http://127.0.0.1:{receiver.server_address[1]}/hooks/upr"
    channel = WebhookChannel(settings())
    payload = {"kind": "status.changed", "text": "កំពុងអនុវត្ត", "recommendation": {"number": "118.17"}}
    try:
        key = await channel.send(OutgoingWebhook(url, "integrator-secret", payload, "w1"))
        assert key == "w1"
        [(headers, body)] = receiver.received  # type: ignore[attr-defined]
        verify_webhook("integrator-secret", headers, body)
        assert json.loads(body) == payload and headers["webhook-id"] == "w1"
        with pytest.raises(InvalidSignature):
            verify_webhook("some-other-secret", headers, body)

        receiver.status = 404  # type: ignore[attr-defined]
        with pytest.raises(DeliveryError) as gone:
            await channel.send(OutgoingWebhook(url, "s", payload, "w2"))
        assert gone.value.permanent and "/hooks" not in str(gone.value)
        receiver.status = 500  # type: ignore[attr-defined]
        with pytest.raises(DeliveryError) as broken:
            await channel.send(OutgoingWebhook(url, "s", payload, "w3"))
        assert broken.value.transient
        with pytest.raises(DeliveryError) as unusable:
            await channel.send(OutgoingWebhook("ftp://example.org/x", "s", payload, "w4"))
        assert unusable.value.permanent
    finally:
        await channel.close()


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/hooks",  # loopback
        "http://localhost:{port}/hooks",  # a name that resolves to loopback
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
        "http://10.0.0.5/hooks",  # private
        "http://[::1]:{port}/hooks",  # IPv6 loopback
    ],
)
async def test_webhooks_do_not_reach_the_internal_network(
    receiver: ThreadingHTTPServer, target: str
) -> None:
    url = target.format(port=receiver.server_address[1])
    guarded = WebhookChannel(settings(environment="production", secret_key="p" * 40))
    try:
        with pytest.raises(DeliveryError) as refused:
            await guarded.send(OutgoingWebhook(url, "s", {"a": 1}, "w-ssrf"))
        assert refused.value.permanent and "non-public" in str(refused.value)
        assert receiver.received == []  # type: ignore[attr-defined]
    finally:
        await guarded.close()
    # An operator who runs receivers on the internal network says so.
    for allowed in (
        WebhookChannel(settings(webhook_allow_private_networks=True)),
        WebhookChannel(settings()),  # the test environment allows it unless told otherwise
    ):
        assert allowed.allow_private
        await allowed.close()


def test_verify_webhook_rejects_stale_future_altered_and_unsigned() -> None:
    body = json.dumps({"a": 1}).encode()
    headers = signed_headers(SECRET, "m1", body, now=1_000_000)
    verify_webhook(SECRET, headers, body, now=1_000_100)
    verify_webhook(SECRET, {k.upper(): v for k, v in headers.items()}, body, now=1_000_000)
    with pytest.raises(InvalidSignature, match="tolerance"):
        verify_webhook(SECRET, headers, body, now=1_000_000 + 301)
    with pytest.raises(InvalidSignature, match="tolerance"):
        verify_webhook(SECRET, headers, body, now=1_000_000 - 301)
    with pytest.raises(InvalidSignature):
        verify_webhook(SECRET, headers, body + b" ", now=1_000_000)
    with pytest.raises(InvalidSignature):
        verify_webhook(SECRET, {**headers, "webhook-id": "m2"}, body, now=1_000_000)
    with pytest.raises(InvalidSignature):
        verify_webhook("other-secret", headers, body, now=1_000_000)
    with pytest.raises(InvalidSignature):
        verify_webhook(SECRET, {"webhook-id": "m1"}, body, now=1_000_000)
    # During a key rotation a sender lists several signatures; one matching is enough.
    rotated = {**headers, "webhook-signature": "v1,bm9wZQ== " + headers["webhook-signature"]}
    verify_webhook(SECRET, rotated, body, now=1_000_000)


def test_signature_follows_standard_webhooks() -> None:
    # The example of the Standard Webhooks specification: a whsec_ secret is base64.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    msg_id, timestamp = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330
    body = b'{"test": 2432232314}'
    assert sign_webhook(secret, msg_id, timestamp, body) == (
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


# --- rate limiting and masking -----------------------------------------------------------


class FakeClock:
    """A clock that only moves when told; sleeping records when the sleeper would wake."""

    def __init__(self) -> None:
        self.now = 0.0
        self.wakes: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.wakes.append(round(self.now + seconds, 6))


async def test_rate_limiter_is_a_fair_token_bucket() -> None:
    clock = FakeClock()
    limiter = RateLimiter(20.0, burst=1, clock=clock, sleep=clock.sleep)
    await asyncio.gather(*(limiter.acquire() for _ in range(11)))
    # The first goes at once; the ten others are spaced 1/20 s apart, never two for one token.
    assert sorted(clock.wakes) == [round(0.05 * n, 6) for n in range(1, 11)]
    clock.now = 10.0  # a long idle refills the bucket up to burst, not beyond
    clock.wakes.clear()
    await asyncio.gather(*(limiter.acquire() for _ in range(2)))
    assert clock.wakes == [10.05]


async def test_rate_limiter_bursts_then_keeps_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10.0, burst=5, clock=clock, sleep=clock.sleep)
    await asyncio.gather(*(limiter.acquire() for _ in range(25)))
    assert len(clock.wakes) == 20  # five from the burst, twenty waiting
    wakes = sorted(clock.wakes)
    for count, at in enumerate(wakes, start=6):
        assert count <= 5 + 10 * at + 1e-6  # never more than burst + rate * elapsed


async def test_a_cancelled_waiter_gives_its_token_back() -> None:
    clock = FakeClock()
    blocked = asyncio.Event()

    async def sleep_until_cancelled(seconds: float) -> None:
        clock.wakes.append(clock.now + seconds)
        await blocked.wait()  # never set: the waiter only leaves by cancellation

    limiter = RateLimiter(1.0, burst=1, clock=clock, sleep=sleep_until_cancelled)
    await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    second = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    assert clock.wakes == [1.0, 1.0]  # the next one waits for one token, not two


async def test_rate_limiter_really_waits() -> None:
    limiter = RateLimiter(50.0, burst=1)
    started = time.monotonic()
    for _ in range(6):
        await limiter.acquire()
    assert time.monotonic() - started >= 0.08  # five waits of 20 ms: a lower bound only


def test_masking() -> None:
    assert mask_personal("to a.person@example.org") == "to a***@example.org"
    assert mask_personal("SMS to +85512345678 failed") == "SMS to +855*****678 failed"
    assert mask_personal("+855123456789") == "+855******789"
    assert mask_personal("recommendation 118.17, HTTP 503") == "recommendation 118.17, HTTP 503"
    error = DeliveryError("refused <someone@example.org> and +85512345678", transient=False)
    assert "someone" not in str(error) and "12345" not in str(error) and error.permanent
