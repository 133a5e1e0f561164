"""`upr dlq`: list, retry and drop the events a consumer dead-lettered (stream <NS>_DLQ)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass
from typing import Annotated, Any

import typer

from cli.common import bus_settings, fail, jetstream, print_json

app = typer.Typer(help="Dead-lettered events: list, retry, drop.", no_args_is_help=True)

SeqArg = Annotated[list[int] | None, typer.Argument(help="DLQ sequence numbers (upr dlq list)")]
AllOpt = Annotated[bool, typer.Option("--all", help="Every dead letter (of --consumer)")]
ConsumerOpt = Annotated[str | None, typer.Option(help="Only this consumer's dead letters")]


@dataclass
class DeadLetter:
    """One parked message and why it was parked (headers written by shared/bus.py)."""

    seq: int
    time: str
    consumer: str
    subject: str
    error: str
    deliveries: int | None
    original_seq: int | None
    event_id: str | None
    event_type: str | None


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def _dead_letter(msg: Any) -> DeadLetter:
    headers = msg.headers or {}
    event: dict[str, Any] = {}
    try:
        parsed = json.loads(msg.data or b"")
        if isinstance(parsed, dict):
            event = parsed
    except ValueError:
        pass
    return DeadLetter(
        seq=msg.seq,
        time=msg.time.isoformat() if msg.time else "",
        consumer=headers.get("Upr-Dlq-Consumer", msg.subject.partition(".")[2]),
        subject=headers.get("Upr-Dlq-Subject", ""),
        error=headers.get("Upr-Dlq-Error", ""),
        deliveries=_int(headers.get("Upr-Dlq-Deliveries")),
        original_seq=_int(headers.get("Upr-Dlq-Stream-Seq")),
        event_id=event.get("id") if isinstance(event.get("id"), str) else None,
        event_type=event.get("type") if isinstance(event.get("type"), str) else None,
    )


def _names(settings: Any) -> tuple[str, str]:
    """The dead-letter stream and the subject filter for one consumer (or all)."""
    return f"{settings.nats_namespace.upper()}_DLQ", f"{settings.nats_namespace}_dlq."


async def _messages(js: Any, stream: str, subject: str, limit: int | None) -> list[Any]:
    """The stored messages of the stream on a subject (wildcards allowed), oldest first."""
    import nats.js.errors

    try:
        state = (await js.stream_info(stream)).state
    except nats.js.errors.NotFoundError:
        return []
    found: list[Any] = []
    seq = state.first_seq or 1
    while seq <= state.last_seq and (limit is None or len(found) < limit):
        try:
            msg = await js.get_msg(stream, seq=seq, subject=subject, next=True)
        except nats.js.errors.NotFoundError:
            break
        found.append(msg)
        seq = msg.seq + 1
    return found


async def _selected(
    js: Any, stream: str, prefix: str, seqs: list[int], every: bool, consumer: str | None
) -> tuple[list[Any], list[int]]:
    """The messages named by sequence (or all of a consumer's) and the sequences not found."""
    import nats.js.errors

    subject = prefix + (consumer or ">")
    if every:
        return await _messages(js, stream, subject, None), []
    found, missing = [], []
    for seq in seqs:
        try:
            msg = await js.get_msg(stream, seq=seq)
        except nats.js.errors.NotFoundError:
            missing.append(seq)
            continue
        if consumer and msg.subject != subject:
            missing.append(seq)
            continue
        found.append(msg)
    return found, missing


def _check_selection(seqs: list[int] | None, every: bool) -> list[int]:
    if seqs and every:
        fail("give sequence numbers or --all, not both", 2)
    if not seqs and not every:
        fail("give the sequence numbers to act on (see `upr dlq list`), or --all", 2)
    return seqs or []


@app.command("list")
def list_dead_letters(
    consumer: ConsumerOpt = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many")] = 100,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Show dead-lettered events: sequence, time, consumer, original subject, error."""
    settings = bus_settings()
    stream, prefix = _names(settings)

    async def main() -> list[DeadLetter]:
        async with jetstream(settings) as (_, js):
            return [
                _dead_letter(m)
                for m in await _messages(js, stream, prefix + (consumer or ">"), limit)
            ]

    letters = asyncio.run(main())
    if json_output:
        print_json([asdict(letter) for letter in letters])
        return
    if not letters:
        typer.echo(f"no dead letters in {stream}")
        return
    for letter in letters:
        typer.echo(
            f"{letter.seq}  {letter.time}  {letter.consumer}  {letter.subject}  "
            f"event {letter.event_id or '?'}  after {letter.deliveries or '?'} deliveries: "
            f"{letter.error}"
        )


@app.command("retry")
def retry(seqs: SeqArg = None, every: AllOpt = False, consumer: ConsumerOpt = None) -> None:
    """Publish dead letters again to their original subject, then remove them from the DLQ."""
    chosen = _check_selection(seqs, every)
    settings = bus_settings()
    stream, prefix = _names(settings)

    async def main() -> int:
        from pydantic import ValidationError

        from shared.events import Envelope

        problems = 0
        async with jetstream(settings) as (_, js):
            msgs, missing = await _selected(js, stream, prefix, chosen, every, consumer)
            for seq in missing:
                typer.echo(f"error: no dead letter {seq} in {stream}", err=True)
            for msg in msgs:
                letter = _dead_letter(msg)
                try:
                    envelope = Envelope.model_validate_json(msg.data)
                except ValidationError:
                    typer.echo(
                        f"error: {letter.seq} is not a valid event and would be dead-lettered "
                        "again; drop it",
                        err=True,
                    )
                    problems += 1
                    continue
                if not letter.subject:
                    typer.echo(f"error: {letter.seq} has no original subject; drop it", err=True)
                    problems += 1
                    continue
                # A new message id: the original one would fall in the stream's duplicate
                # window and be dropped. It is stable per dead letter, so retrying the same
                # one twice (a crash before the delete below) is still dropped as a duplicate.
                # The event id in the body is unchanged, so the inboxes of consumers that
                # handled it already skip it.
                headers = {
                    "Nats-Msg-Id": f"{envelope.id}:dlq-retry:{letter.seq}",
                    "Ce-Type": envelope.type,
                }
                if envelope.traceparent:
                    headers["traceparent"] = envelope.traceparent
                ack = await js.publish(letter.subject, msg.data, headers=headers, timeout=5)
                await js.delete_msg(stream, letter.seq)
                note = " (it had been published already)" if ack.duplicate else ""
                typer.echo(
                    f"retried {letter.seq}: event {envelope.id} republished to {letter.subject} "
                    f"as stream seq {ack.seq}{note}"
                )
        return problems + len(missing)

    if asyncio.run(main()):
        raise typer.Exit(1)


@app.command("drop")
def drop(seqs: SeqArg = None, every: AllOpt = False, consumer: ConsumerOpt = None) -> None:
    """Delete dead letters for good."""
    chosen = _check_selection(seqs, every)
    settings = bus_settings()
    stream, prefix = _names(settings)

    async def main() -> int:
        async with jetstream(settings) as (_, js):
            msgs, missing = await _selected(js, stream, prefix, chosen, every, consumer)
            for seq in missing:
                typer.echo(f"error: no dead letter {seq} in {stream}", err=True)
            for msg in msgs:
                await js.delete_msg(stream, msg.seq)
                typer.echo(f"dropped {msg.seq}")
            if every and not msgs:
                typer.echo(f"no dead letters in {stream}")
        return len(missing)

    if asyncio.run(main()):
        raise typer.Exit(1)
