"""`upr events`: see the durable consumers and replay events to one of them."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import typer

from cli.common import SERVICE_CONSUMERS, bus_settings, fail, jetstream, parse_since, print_json

app = typer.Typer(help="Events on NATS JetStream: consumers, replays.", no_args_is_help=True)


@dataclass
class ReplayPlan:
    """Where a replay starts and how many events it delivers again."""

    consumer: str
    stream: str
    since: datetime
    start_seq: int
    first_since: int | None
    unacked_from: int
    pending: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The plan as plain JSON values."""
        return {
            "consumer": self.consumer,
            "stream": self.stream,
            "since": self.since.isoformat(),
            "start_seq": self.start_seq,
            "events": self.pending,
        }


@app.command("consumers")
def consumers(
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """List the durable consumers of the event stream and how far behind each is."""
    settings = bus_settings()

    async def main() -> list[dict[str, Any]]:
        import nats.js.errors

        async with jetstream(settings) as (_, js):
            stream = settings.nats_namespace.upper()
            try:
                infos = await js.consumers_info(stream)
            except nats.js.errors.NotFoundError:
                fail(f"stream {stream} does not exist yet; start a service once to create it")
            return [
                {
                    "name": info.name,
                    "filter": info.config.filter_subjects or info.config.filter_subject,
                    "deliver_policy": getattr(
                        info.config.deliver_policy, "value", info.config.deliver_policy
                    ),
                    "pending": info.num_pending or 0,
                    "ack_pending": info.num_ack_pending or 0,
                    "redelivered": info.num_redelivered or 0,
                    "acked_up_to": info.ack_floor.stream_seq if info.ack_floor else 0,
                }
                for info in infos
                if info.config.durable_name
            ]

    rows = asyncio.run(main())
    if json_output:
        print_json(rows)
        return
    if not rows:
        typer.echo("no consumers yet (monitoring and notifications create theirs when they start)")
    for row in rows:
        typer.echo(
            f"{row['name']}: {row['pending']} waiting, {row['ack_pending']} being handled, "
            f"acknowledged up to stream seq {row['acked_up_to']} "
            f"(delivery starts: {row['deliver_policy']})"
        )


async def _first_seq_since(js: Any, stream: str, subjects: str, since: datetime) -> int | None:
    """The stream sequence of the first event published at or after `since`, if any."""
    from nats.errors import TimeoutError as NatsTimeout
    from nats.js import api

    sub = await js.pull_subscribe(
        subjects,
        stream=stream,
        config=api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.BY_START_TIME,
            opt_start_time=since,
            ack_policy=api.AckPolicy.NONE,
            inactive_threshold=30.0,
        ),
    )
    try:
        msgs = await sub.fetch(1, timeout=2.0)
    except (NatsTimeout, TimeoutError):
        return None
    finally:
        with contextlib.suppress(Exception):
            await js.delete_consumer(stream, (await sub.consumer_info()).name)
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    return msgs[0].metadata.sequence.stream if msgs else None


async def _plan(js: Any, stream: str, namespace: str, durable: str, since: datetime) -> Any:
    import nats.js.errors

    try:
        info = await js.consumer_info(stream, durable)
    except nats.js.errors.NotFoundError:
        known = []
        with contextlib.suppress(nats.js.errors.NotFoundError):
            known = [c.name for c in await js.consumers_info(stream)]
        fail(
            f"no consumer {durable!r} on stream {stream}; "
            f"known: {', '.join(known) or 'none (start the services once)'}"
        )
    state = (await js.stream_info(stream)).state
    first_since = await _first_seq_since(js, stream, f"{namespace}.>", since)
    unacked_from = (info.ack_floor.stream_seq if info.ack_floor else 0) + 1
    # Never skip what the consumer has not acknowledged yet, even if older than --since.
    start = min(first_since or state.last_seq + 1, unacked_from)
    start = max(start, state.first_seq or 1)
    plan = ReplayPlan(durable, stream, since, start, first_since, unacked_from)
    return info, plan


@app.command("replay")
def replay(
    since: Annotated[
        str, typer.Option(help="From when: 2026-11-28T09:00:00Z, 2026-11-28, 6h, 2d (UTC)")
    ],
    consumer: Annotated[
        str | None, typer.Option(help="Durable consumer name (see `upr events consumers`)")
    ] = None,
    service: Annotated[
        str | None,
        typer.Option(help="monitoring or notifications: replay to that service's consumer"),
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Only say what would be delivered")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Deliver again, to one durable consumer, every event published since a point in time."""
    if service is not None and service not in SERVICE_CONSUMERS:
        fail(f"unknown service {service!r}; choose from {', '.join(SERVICE_CONSUMERS)}", 2)
    durable = consumer or (SERVICE_CONSUMERS[service] if service else None)
    if durable is None:
        fail("say which consumer: --consumer NAME or --service monitoring|notifications", 2)
    moment = parse_since(since)
    settings = bus_settings()

    async def main() -> ReplayPlan:
        from nats.js import api

        async with jetstream(settings) as (_, js):
            stream = settings.nats_namespace.upper()
            info, plan = await _plan(js, stream, settings.nats_namespace, durable, moment)
            config = info.config
            config.deliver_policy = api.DeliverPolicy.BY_START_SEQUENCE
            config.opt_start_seq = plan.start_seq
            config.opt_start_time = None
            if dry_run:
                plan.pending = await _count_from(js, stream, config)
                return plan
            # A durable's start cannot be changed in place: delete it and create it again.
            # A running service's pull subscription keeps working across this.
            await js.delete_consumer(stream, durable)
            created = await js.add_consumer(stream, config=config)
            plan.pending = created.num_pending or 0
            return plan

    plan = asyncio.run(main())
    if json_output:
        print_json({**plan.as_dict(), "dry_run": dry_run})
        return
    verb = "would receive" if dry_run else "will receive"
    typer.echo(
        f"{plan.consumer} {verb} {plan.pending} event(s) again, from stream sequence "
        f"{plan.start_seq} of {plan.stream}"
    )
    if plan.first_since is None or plan.unacked_from < plan.first_since:
        typer.echo(
            f"(starting at sequence {plan.unacked_from}: the first event it has not acknowledged, "
            f"earlier than {plan.since.isoformat()})"
        )
    typer.echo(
        "Events it handled before are skipped by its inbox, so a replay has no second effect."
    )


async def _count_from(js: Any, stream: str, config: Any) -> int:
    """How many events a consumer with this configuration would receive (a throwaway copy)."""
    import copy

    probe = copy.copy(config)
    probe.durable_name = None
    probe.name = None
    probe.inactive_threshold = 10.0
    info = await js.add_consumer(stream, config=probe)
    try:
        return info.num_pending or 0
    finally:
        with contextlib.suppress(Exception):
            await js.delete_consumer(stream, info.name)
