"""NATS JetStream plumbing: streams, publishing with dedup ids, durable pull consumers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from pydantic import ValidationError

from shared import tracing
from shared.events import Envelope
from shared.logs import EVENT_ID
from shared.metrics import (
    CONSUMER_LAG,
    EVENTS_CONSUMED,
    EVENTS_PUBLISH_FAILED,
    EVENTS_PUBLISHED,
    set_consumer_lag,
)
from shared.settings import BaseServiceSettings

log = logging.getLogger(__name__)

EnvelopeHandler = Callable[[Envelope], Awaitable[None]]
# How often an idle consumer refreshes upr_consumer_pending from JetStream.
LAG_REFRESH_S = 5.0


class PermanentEventError(Exception):
    """The event can never be handled (impossible data): dead-letter it at once."""


def dependency_unavailable(exc: BaseException) -> bool:
    """Whether an error says a backing service (the database) is unreachable, not the event bad."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    for error in (exc, exc.__cause__):
        if error is None:
            continue
        if type(error) is OSError or isinstance(error, ConnectionError | TimeoutError):
            return True
        if isinstance(error, OperationalError | InterfaceError):
            return True
        if isinstance(error, DBAPIError) and error.connection_invalidated:
            return True
    return False


@dataclass
class PublishOutcome:
    """The result of publishing one envelope: acknowledged, or the error."""

    envelope: Envelope
    error: BaseException | None = None
    duplicate: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


class Bus:
    """One NATS connection with the service's JetStream streams and consumers."""

    def __init__(self, settings: BaseServiceSettings, client_name: str) -> None:
        self.settings = settings
        self.client_name = client_name
        self.service = client_name.removeprefix("upr-")
        self.namespace = settings.nats_namespace
        self.stream = self.namespace.upper()
        self.dead_letter_stream = f"{self.stream}_DLQ"
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._consumers: list[Consumer] = []
        # Raises when the backing services (the database) do not answer; run_service sets it.
        self.dependency_check: Callable[[], Awaitable[None]] | None = None

    # --- naming -------------------------------------------------------------------------

    def subject_for(self, event_type: str) -> str:
        """The NATS subject of an event type (its 'upr' prefix is the namespace)."""
        head, _, rest = event_type.partition(".")
        if head != "upr" or not rest:
            raise ValueError(f"event type {event_type!r} does not start with 'upr.'")
        return f"{self.namespace}.{rest}"

    def event_type_for(self, subject: str) -> str:
        """The event type a subject carries (inverse of subject_for)."""
        return "upr." + subject.partition(".")[2]

    def dead_letter_subject(self, durable: str) -> str:
        """Where a consumer's poison messages go."""
        return f"{self.namespace}_dlq.{durable}"

    # --- connection ---------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError("bus is not connected")
        return self._js

    async def connect(self, *, attempts: int | None = None) -> None:
        """Connect (retrying until the server answers) and make sure the streams exist."""
        attempt = 0
        while True:
            attempt += 1
            try:
                self._nc = await nats.connect(
                    # A cluster: several URLs, comma-separated; any one of them will do.
                    servers=[u.strip() for u in self.settings.nats_url.split(",") if u.strip()],
                    name=self.client_name,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    connect_timeout=2,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                )
                break
            except (OSError, nats.errors.Error, TimeoutError) as exc:
                if attempts is not None and attempt >= attempts:
                    raise
                log.warning("nats not reachable (%s), retrying", exc)
                await asyncio.sleep(min(0.5 * attempt, 5.0))
        self._js = self._nc.jetstream(timeout=5)
        await self.ensure_streams()

    async def close(self) -> None:
        """Stop consumers and drain the connection."""
        for consumer in self._consumers:
            await consumer.stop()
        self._consumers.clear()
        if self._nc is not None and not self._nc.is_closed:
            # Every publish already awaited its ack, so there is nothing to drain.
            with contextlib.suppress(Exception):
                await self._nc.flush(timeout=2)
            with contextlib.suppress(Exception):
                await self._nc.close()
        self._nc = None
        self._js = None

    async def _on_error(self, exc: Exception) -> None:
        log.warning("nats error: %s", exc)

    async def _on_disconnected(self) -> None:
        log.warning("nats disconnected")

    async def _on_reconnected(self) -> None:
        log.info("nats reconnected")

    async def ensure_streams(self) -> None:
        """Create or update the event stream and the dead-letter stream."""
        await self._ensure_stream(
            api.StreamConfig(
                name=self.stream,
                subjects=[f"{self.namespace}.>"],
                storage=api.StorageType.FILE,
                retention=api.RetentionPolicy.LIMITS,
                duplicate_window=self.settings.nats_duplicate_window_s,
                max_bytes=self.settings.nats_stream_max_bytes,
                discard=api.DiscardPolicy.OLD,
                num_replicas=self.settings.nats_stream_replicas,
            )
        )
        await self._ensure_stream(
            api.StreamConfig(
                name=self.dead_letter_stream,
                subjects=[f"{self.namespace}_dlq.>"],
                storage=api.StorageType.FILE,
                retention=api.RetentionPolicy.LIMITS,
                duplicate_window=self.settings.nats_duplicate_window_s,
                num_replicas=self.settings.nats_stream_replicas,
            )
        )

    async def _ensure_stream(self, config: api.StreamConfig) -> None:
        try:
            await self.js.stream_info(config.name)  # type: ignore[arg-type]
        except nats.js.errors.NotFoundError:
            with contextlib.suppress(nats.js.errors.BadRequestError):
                await self.js.add_stream(config)
                return
        await self.js.update_stream(config)

    @property
    def server_version(self):
        return self._nc.connected_server_version if self._nc is not None else None

    @property
    def consumers(self) -> list[Consumer]:
        return list(self._consumers)

    # --- publishing ---------------------------------------------------------------------

    def _headers(self, envelope: Envelope) -> dict[str, str]:
        headers = {api.Header.MSG_ID.value: envelope.id, "Ce-Type": envelope.type}
        if envelope.traceparent:
            headers["traceparent"] = envelope.traceparent
        return headers

    async def publish(self, envelope: Envelope, *, timeout: float = 5.0) -> api.PubAck:
        """Publish one envelope and wait for the stream's acknowledgement."""
        try:
            ack = await self.js.publish(
                self.subject_for(envelope.type),
                envelope.model_dump_json().encode(),
                timeout=timeout,
                headers=self._headers(envelope),
            )
        except Exception:
            EVENTS_PUBLISH_FAILED.labels(self.service, envelope.type).inc()
            raise
        EVENTS_PUBLISHED.labels(self.service, envelope.type).inc()
        return ack

    async def publish_many(
        self, envelopes: Sequence[Envelope], *, timeout: float = 10.0
    ) -> list[PublishOutcome]:
        """Publish a batch without waiting for each ack in turn; report each outcome."""
        outcomes = [PublishOutcome(env) for env in envelopes]
        futures: list[asyncio.Future[api.PubAck] | None] = []
        for outcome in outcomes:
            try:
                future = await self.js.publish_async(
                    self.subject_for(outcome.envelope.type),
                    outcome.envelope.model_dump_json().encode(),
                    wait_stall=timeout,
                    headers=self._headers(outcome.envelope),
                )
                futures.append(future)
            except Exception as exc:
                # nats-py turns a cancellation while it waits for a slot into an error.
                if (task := asyncio.current_task()) is not None and task.cancelling():
                    raise asyncio.CancelledError from exc
                outcome.error = exc
                futures.append(None)
        pending = [f for f in futures if f is not None]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        for outcome, future in zip(outcomes, futures, strict=True):
            if future is None:
                continue
            if not future.done():
                future.cancel()
                outcome.error = TimeoutError("no acknowledgement from the stream")
            elif future.cancelled():
                outcome.error = TimeoutError("publish cancelled")
            elif future.exception() is not None:
                outcome.error = future.exception()
            else:
                outcome.duplicate = bool(future.result().duplicate)
        for outcome in outcomes:
            counter = EVENTS_PUBLISHED if outcome.ok else EVENTS_PUBLISH_FAILED
            counter.labels(self.service, outcome.envelope.type).inc()
        return outcomes

    # --- consuming ----------------------------------------------------------------------

    def consume(
        self,
        durable: str,
        event_types: Sequence[str],
        handler: EnvelopeHandler,
        *,
        batch: int = 50,
    ) -> Consumer:
        """Start a durable pull consumer that hands each envelope to the handler."""
        consumer = Consumer(
            bus=self,
            durable=durable,
            subjects=[self.subject_for(t) for t in event_types],
            handler=handler,
            batch=batch,
        )
        consumer.start()
        self._consumers.append(consumer)
        return consumer


@dataclass
class Consumer:
    """A durable pull consumer loop: ack, nak with delay, dead-letter after max deliveries."""

    bus: Bus
    durable: str
    subjects: list[str]
    handler: EnvelopeHandler
    batch: int = 50
    handled: int = 0
    dead_lettered: int = 0
    _task: asyncio.Task[None] | None = field(default=None, repr=False)
    _stopping: bool = field(default=False, repr=False)
    _lag_refreshed_at: float = field(default=float("-inf"), repr=False)

    @property
    def max_deliver(self) -> int:
        return self.bus.settings.consumer_max_deliver

    def start(self) -> None:
        """Consume in the background (again, after a stop)."""
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"consumer:{self.durable}")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def replay(self) -> None:
        """Start over from the beginning of the stream (the handler must be idempotent)."""
        await self.stop()
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await self.bus.js.delete_consumer(self.bus.stream, self.durable)
        self.start()

    def _filters(self) -> dict[str, object]:
        """Server-side filtering: several subjects need nats-server 2.10; older, one wildcard."""
        if len(self.subjects) == 1:
            return {"filter_subject": self.subjects[0]}
        version = self.bus.server_version
        if version is not None and (version.major, version.minor) >= (2, 10):
            return {"filter_subjects": self.subjects}
        return {"filter_subject": f"{self.bus.namespace}.>"}

    def _config(self) -> api.ConsumerConfig:
        return api.ConsumerConfig(
            durable_name=self.durable,
            name=self.durable,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=self.bus.settings.consumer_ack_wait_s,
            # The server's limit is a safety net above ours: we dead-letter first.
            max_deliver=self.max_deliver + 2,
            deliver_policy=api.DeliverPolicy.ALL,
            max_ack_pending=1000,
            **self._filters(),  # type: ignore[arg-type]
        )

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        config = self._config()
        with contextlib.suppress(nats.js.errors.NotFoundError):
            # `upr events replay` recreates the durable from a point in the stream, and the
            # server refuses to change where a durable starts: keep its start.
            existing = (await self.bus.js.consumer_info(self.bus.stream, self.durable)).config
            config.deliver_policy = existing.deliver_policy
            config.opt_start_seq = existing.opt_start_seq
            config.opt_start_time = existing.opt_start_time
        # add_consumer creates the durable or updates it in place (idempotent).
        await self.bus.js.add_consumer(self.bus.stream, config=config)
        return await self.bus.js.pull_subscribe_bind(durable=self.durable, stream=self.bus.stream)

    async def _run(self) -> None:
        # This task may have been started during a request: its trace is not the events'.
        tracing.CURRENT.set(None)
        while not self._stopping:
            try:
                await self.bus.ensure_streams()
                sub = await self._subscribe()
                failures = 0
                while not self._stopping:
                    try:
                        msgs = await sub.fetch(self.batch, timeout=1.0)
                    except (nats.errors.TimeoutError, TimeoutError):
                        # An empty fetch; under load nats-py may raise the builtin kind.
                        failures = 0
                        await self._refresh_lag()
                        continue
                    except nats.errors.Error as exc:
                        failures += 1
                        if failures > 5:
                            raise
                        log.warning("consumer %s fetch failed (%s); retrying", self.durable, exc)
                        await asyncio.sleep(0.5)
                        continue
                    failures = 0
                    for msg in msgs:
                        await self._handle(msg)
                    if msgs:
                        # The last message knows how many more wait behind it.
                        CONSUMER_LAG.labels(self.bus.service, self.durable).set(
                            msgs[-1].metadata.num_pending or 0
                        )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("consumer %s restarting after: %r", self.durable, exc)
                await asyncio.sleep(1.0)

    async def _refresh_lag(self) -> None:
        """While idle, ask JetStream for the lag at most every LAG_REFRESH_S seconds."""
        now = asyncio.get_running_loop().time()
        if now - self._lag_refreshed_at < LAG_REFRESH_S:
            return
        self._lag_refreshed_at = now
        try:
            info = await self.bus.js.consumer_info(self.bus.stream, self.durable, timeout=2)
            set_consumer_lag(self.bus.service, self.durable, info)
        except Exception as exc:
            log.debug("consumer %s: lag not refreshed: %r", self.durable, exc)

    def _count(self, event_type: str, outcome: str) -> None:
        EVENTS_CONSUMED.labels(self.bus.service, self.durable, event_type, outcome).inc()

    async def _handle(self, msg: Msg) -> None:
        if msg.subject not in self.subjects:
            # A broader server-side filter (old servers) let through what we do not handle.
            await msg.ack()
            return
        try:
            envelope = Envelope.model_validate_json(msg.data)
        except ValidationError as exc:
            await self._dead_letter(msg, f"not a valid event envelope: {exc}")
            return
        # The publisher's span is the parent: events the handler records continue its trace.
        parent = tracing.parse((msg.headers or {}).get("traceparent")) or tracing.parse(
            envelope.traceparent
        )
        with tracing.span(
            self.bus.service,
            f"{self.durable} process",
            parent,
            kind="consumer",
            attributes={"messaging.destination.name": msg.subject},
        ):
            await self._handle_envelope(msg, envelope)

    async def _handle_envelope(self, msg: Msg, envelope: Envelope) -> None:
        delivered = msg.metadata.num_delivered
        token = EVENT_ID.set(envelope.id)
        try:
            await self._call_handler(msg, envelope)
        except PermanentEventError as exc:
            await self._dead_letter(msg, str(exc))
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if delivered >= self.max_deliver:
                await self._dead_letter(msg, f"failed {delivered} times; last error: {exc!r}")
                return
            backoff = self.bus.settings.consumer_backoff_s or [1.0]
            delay = backoff[min(delivered - 1, len(backoff) - 1)]
            log.warning(
                "handler %s failed on event %s (delivery %d), retrying in %ss: %r",
                self.durable,
                envelope.id,
                delivered,
                delay,
                exc,
            )
            await msg.nak(delay=delay)
            self._count(envelope.type, "retried")
            return
        finally:
            EVENT_ID.reset(token)
        await msg.ack()
        self.handled += 1
        self._count(envelope.type, "handled")

    async def _call_handler(self, msg: Msg, envelope: Envelope) -> None:
        """Run the handler; while a backing service is unreachable, pause here and retry.

        An outage is not the event's fault: naking would spend its deliveries and dead-letter
        good events, so the consumer holds the message (in progress) until the handler runs.
        An error that looks like an outage (a timeout, a dropped connection) while the database
        answers is the event's own: it is retried with backoff and dead-lettered like any other.
        """
        pause = 0.5
        while True:
            try:
                await self.handler(envelope)
                return
            except Exception as exc:
                if self._stopping or not dependency_unavailable(exc):
                    raise
                if await self._dependencies_answer():
                    raise  # a timeout or a dropped connection of this event's own making
                log.warning(
                    "consumer %s paused on event %s, a backing service is unavailable (%r); "
                    "retrying in %ss",
                    self.durable,
                    envelope.id,
                    exc,
                    pause,
                )
            with contextlib.suppress(Exception):
                await msg.in_progress()
            await asyncio.sleep(pause)
            pause = min(pause * 2, 5.0)

    async def _dependencies_answer(self) -> bool:
        """Whether the backing services answer now (with no check: assume they do not)."""
        check = self.bus.dependency_check
        if check is None:
            return False
        try:
            await check()
        except Exception:
            return False
        return True

    async def _dead_letter(self, msg: Msg, error: str) -> None:
        headers = {
            "Upr-Dlq-Error": error[:2000].replace("\r", " ").replace("\n", " "),
            "Upr-Dlq-Consumer": self.durable,
            "Upr-Dlq-Subject": msg.subject,
            "Upr-Dlq-Stream-Seq": str(msg.metadata.sequence.stream),
            "Upr-Dlq-Deliveries": str(msg.metadata.num_delivered),
        }
        try:
            await self.bus.js.publish(
                self.bus.dead_letter_subject(self.durable), msg.data, headers=headers, timeout=5
            )
        except Exception as exc:
            # Never drop a message we could not park: let it come back.
            log.error("dead-lettering failed for %s (%r); will retry", msg.subject, exc)
            await msg.nak(delay=5)
            return
        log.error("dead-lettered a message from %s on %s: %s", self.durable, msg.subject, error)
        self.dead_lettered += 1
        self._count(self.bus.event_type_for(msg.subject), "dead_lettered")
        await msg.term()
