"""Use case: send due deliveries, claimed row by row, with retries and a delivery log."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.notifications import channels, links, rendering
from services.notifications.models import Delivery, Recipient
from services.notifications.settings import NotificationsSettings
from shared.db import is_postgres
from shared.events import DeliveryFailed, DeliverySent, Envelope
from shared.metrics import observe_delivery
from shared.outbox import record_events_bulk

log = logging.getLogger(__name__)
SOURCE = "upr/notifications"
Clock = Callable[[], dt.datetime]


def mask_email(address: str | None) -> str | None:
    """a***@example.org: enough to recognise, not enough to harvest."""
    if not address or "@" not in address:
        return address
    local, domain = address.split("@", 1)
    return f"{local[:1]}***@{domain}"


def mask_phone(number: str | None) -> str | None:
    """+855******678."""
    if not number:
        return number
    return number[:4] + "*" * max(len(number) - 7, 0) + number[-3:]


def backoff(attempts: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter."""
    return random.uniform(0.5, 1.0) * min(cap, base * 2 ** max(attempts - 1, 0))


@dataclass
class Claimed:
    """A claimed delivery with what sending it needs, detached from any session."""

    id: str
    kind: str
    event_id: str
    event_type: str
    channel: str
    attempts: int
    context: dict[str, Any]
    recipient: dict[str, Any]
    created_at: dt.datetime
    next_attempt_at: dt.datetime


@dataclass
class Outcome:
    claimed: Claimed
    provider_id: str | None = None
    error: str | None = None
    transient: bool = True
    retry_after_s: float | None = None


class Dispatcher:
    """Claims due deliveries, sends them over their channel and records what happened."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        settings: NotificationsSettings,
        clock: Clock,
        *,
        email: Any,
        sms: Any,
        webhook: Any,
    ) -> None:
        self.session_factory = session_factory
        self.settings = settings
        self.clock = clock
        self.transports = {"email": email, "sms": sms, "webhook": webhook}
        self.limiters = {
            "email": channels.RateLimiter(
                settings.email_rate_per_s, burst=max(1, int(settings.email_rate_per_s))
            ),
            "sms": channels.RateLimiter(settings.sms_rate_per_s, burst=1),
            "webhook": channels.RateLimiter(50.0, burst=50),
        }
        self.concurrency = asyncio.Semaphore(16)
        self.email_renderer = rendering.EventEmailRenderer()
        self.sent = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def wake(self) -> None:
        """Look for due deliveries now."""
        self._wake.set()

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="dispatcher")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                handled = await self.run_once()
                if handled >= self.settings.dispatch_batch:
                    continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("dispatcher error: %r", exc)
            await self._wake.wait()

    async def run_once(self) -> int:
        """Claim one batch of due deliveries, send them, record the outcomes as they come."""
        claimed = await self._claim(self.clock())
        if not claimed:
            return 0
        finished: asyncio.Queue[Outcome] = asyncio.Queue()

        async def send(delivery: Claimed) -> None:
            finished.put_nowait(await self._send(delivery))

        sends = [asyncio.create_task(send(c)) for c in claimed]
        try:
            remaining = len(claimed)
            while remaining:
                # Whatever finished while the last record was written goes in the next one: a
                # crash can then repeat only the sends in flight, never a whole batch.
                outcomes = [await finished.get()]
                while not finished.empty():
                    outcomes.append(finished.get_nowait())
                await self._record(outcomes)
                remaining -= len(outcomes)
        finally:
            for task in sends:
                task.cancel()
        return len(claimed)

    async def _claim(self, now: dt.datetime) -> list[Claimed]:
        # A batch may wait on the SMS rate limit: the lease must outlast the whole batch.
        slowest = min(self.settings.sms_rate_per_s, self.settings.email_rate_per_s)
        lease_s = self.settings.claim_lease_s + self.settings.dispatch_batch / max(slowest, 0.01)
        lease = now + dt.timedelta(seconds=lease_s)
        async with self.session_factory() as session, session.begin():
            stmt = (
                select(Delivery)
                .where(
                    Delivery.status == "pending",
                    Delivery.next_attempt_at <= now,
                    or_(Delivery.claimed_until.is_(None), Delivery.claimed_until < now),
                )
                .order_by(Delivery.next_attempt_at)
                .limit(self.settings.dispatch_batch)
            )
            if is_postgres(session.bind):
                stmt = stmt.with_for_update(skip_locked=True, of=Delivery)
            rows = list(await session.scalars(stmt))
            if not rows:
                return []
            await session.execute(
                update(Delivery)
                .where(Delivery.id.in_([r.id for r in rows]))
                .values(claimed_until=lease)
            )
            recipients = {
                r.id: r
                for r in await session.scalars(
                    select(Recipient).where(Recipient.id.in_({row.recipient_id for row in rows}))
                )
            }
            return [
                Claimed(
                    id=row.id,
                    kind=row.kind,
                    event_id=row.event_id,
                    event_type=row.event_type,
                    channel=row.channel,
                    attempts=row.attempts,
                    context=row.context,
                    recipient=_recipient_view(recipients[row.recipient_id]),
                    created_at=row.created_at,
                    next_attempt_at=row.next_attempt_at,
                )
                for row in rows
            ]

    def _links(self, claimed: Claimed) -> dict[str, str | None]:
        secret = self.settings.secret_key.get_secret_value()
        recipient = claimed.recipient
        rec = claimed.context.get("recommendation") or {}
        unsubscribe = links.make_token(
            secret, "unsubscribe", recipient["id"], recipient["token_version"]
        )
        preferences = links.make_token(
            secret, "preferences", recipient["id"], recipient["token_version"]
        )
        base = self.settings.public_url.rstrip("/")
        return {
            "recommendation": f"{self.settings.web_url.rstrip('/')}/recommendations/{rec['id']}"
            if rec.get("id")
            else None,
            "unsubscribe": f"{base}/v1/unsubscribe?token={unsubscribe}",
            "preferences": f"{base}/v1/preferences?token={preferences}",
            **claimed.context.get("links", {}),
        }

    async def _send(self, claimed: Claimed) -> Outcome:
        recipient = claimed.recipient
        link_map = self._links(claimed)
        context = {
            **claimed.context,
            "recipient": {"name": recipient["name"], "language": recipient["language"]},
            "links": link_map,
        }
        try:
            async with self.concurrency:
                await self.limiters[claimed.channel].acquire()
                provider_id = await self._transmit(claimed, recipient, context, link_map)
            return Outcome(claimed, provider_id=provider_id)
        except channels.DeliveryError as exc:
            return Outcome(
                claimed, error=str(exc), transient=exc.transient, retry_after_s=exc.retry_after_s
            )
        except Exception as exc:
            log.warning("delivery %s failed unexpectedly: %r", claimed.id, exc)
            return Outcome(claimed, error=f"{type(exc).__name__}: {exc}"[:500], transient=True)

    async def _transmit(
        self,
        claimed: Claimed,
        recipient: dict[str, Any],
        context: dict[str, Any],
        link_map: dict[str, str | None],
    ) -> str | None:
        language = recipient["language"]
        if claimed.channel == "email":
            rendered = self.email_renderer.render(claimed.event_id, claimed.kind, language, context)
            headers = {
                "Message-ID": f"<{claimed.id}@upr-tracker>",
                "List-Unsubscribe": f"<{link_map['unsubscribe']}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                "X-UPR-Event-ID": claimed.event_id,
            }
            return await self.transports["email"].send(
                channels.OutgoingEmail(
                    to=recipient["email"],
                    subject=rendered.subject,
                    text=rendered.text,
                    html=rendered.html,
                    headers=headers,
                )
            )
        if claimed.channel == "sms":
            rendered = rendering.render(claimed.kind, "sms", language, context)
            text = rendering.fit_sms(
                rendered.text,
                link_map.get("recommendation") or link_map.get("preferences"),
                self.settings.sms_max_segments,
            )
            return await self.transports["sms"].send(
                channels.OutgoingSms(to=recipient["phone"], text=text, idempotency_key=claimed.id)
            )
        payload = {
            "id": claimed.id,
            "kind": claimed.kind,
            "event": context["event"],
            "recommendation": context.get("recommendation"),
            "data": context.get("data"),
        }
        return await self.transports["webhook"].send(
            channels.OutgoingWebhook(
                url=recipient["webhook_url"],
                secret=recipient["webhook_secret"],
                payload=payload,
                idempotency_key=claimed.id,
            )
        )

    async def _record(self, outcomes: list[Outcome]) -> None:
        now = self.clock()
        updates: list[dict[str, Any]] = []
        envelopes: list[Envelope] = []
        observed: list[tuple[str, str, dict[str, Any]]] = []
        for outcome in outcomes:
            claimed = outcome.claimed
            attempts = claimed.attempts + 1
            common = {
                "delivery_id": claimed.id,
                "event_id": claimed.event_id,
                "source_event_type": claimed.event_type,
                "kind": claimed.kind,
                "recipient_id": claimed.recipient["id"],
                "channel": claimed.channel,
                "attempts": attempts,
            }
            # Every row gets the same columns, so one executemany carries the whole batch.
            values: dict[str, Any] = {
                "id": claimed.id,
                "status": "pending",
                "sent_at": None,
                "provider_id": None,
                "attempts": attempts,
                "claimed_until": None,
                "last_error": outcome.error,
                "next_attempt_at": claimed.next_attempt_at,
            }
            if outcome.error is None:
                provider_id = (outcome.provider_id or "")[:300] or None
                values |= {"status": "sent", "sent_at": now, "provider_id": provider_id}
                data: Any = DeliverySent(provider_id=provider_id, **common)
                timing = {
                    "now": now,
                    "created_at": claimed.created_at,
                    "event_time": claimed.context.get("event", {}).get("time"),
                }
                observed.append((claimed.channel, "sent", timing))
            elif not outcome.transient or attempts >= self.settings.max_attempts:
                values["status"] = "failed"
                data = DeliveryFailed(error=outcome.error, **common)
                observed.append((claimed.channel, "failed", {}))
            else:
                observed.append((claimed.channel, "retried", {}))
                delay = backoff(attempts, self.settings.retry_base_s, self.settings.retry_max_s)
                # A provider that says when to come back (429/503 Retry-After) is believed.
                delay = max(delay, min(outcome.retry_after_s or 0.0, self.settings.retry_max_s))
                values["next_attempt_at"] = now + dt.timedelta(seconds=delay)
                data = None
            updates.append(values)
            if data is not None:
                envelopes.append(Envelope.wrap(data, source=SOURCE, subject=claimed.id))
        async with self.session_factory() as session, session.begin():
            await session.execute(update(Delivery), updates)
            await record_events_bulk(session, envelopes)
        # Counted once recorded, so the metrics agree with the delivery log.
        for channel, result, timing in observed:
            observe_delivery(channel, result, **timing)
        self.sent += sum(result == "sent" for _, result, _ in observed)


def _recipient_view(recipient: Recipient) -> dict[str, Any]:
    return {
        "id": recipient.id,
        "name": recipient.name,
        "language": recipient.language,
        "email": recipient.email,
        "phone": recipient.phone,
        "webhook_url": recipient.webhook_url,
        "webhook_secret": recipient.webhook_secret,
        "token_version": recipient.token_version,
    }
