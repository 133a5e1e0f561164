"""`upr dlq list|retry|drop` on messages a real Consumer dead-lettered."""

from __future__ import annotations

import json

from shared.bus import Bus, PermanentEventError
from shared.events import Envelope
from tests.cli.conftest import Invoke, envelope, until


async def test_list_retry_and_drop_dead_letters(bus: Bus, cli_env: str, upr: Invoke) -> None:
    handled: list[Envelope] = []
    poison: set[int] = {1, 2}

    async def handler(env: Envelope) -> None:
        if env.data["n"] in poison:
            raise PermanentEventError(f"cannot handle thing {env.data['n']}")
        handled.append(env)

    consumer = bus.consume("tcli-dlq", ["upr.test.thing.happened"], handler)
    first, second = envelope(1), envelope(2)
    await bus.publish(first)
    await bus.publish(second)
    await until(lambda: consumer.dead_lettered == 2)

    listed = await upr("dlq", "list", "--json")
    assert listed.exit_code == 0, listed.output
    letters = json.loads(listed.stdout)
    assert [(x["event_id"], x["consumer"]) for x in letters] == [
        (first.id, "tcli-dlq"),
        (second.id, "tcli-dlq"),
    ]
    assert letters[0]["subject"] == f"{cli_env}.test.thing.happened"
    assert letters[0]["error"] == "cannot handle thing 1"
    assert letters[0]["event_type"] == "upr.test.thing.happened"
    people = await upr("dlq", "list", "--consumer", "tcli-dlq")
    assert f"{letters[0]['seq']}  " in people.stdout and "cannot handle thing 2" in people.stdout
    other = await upr("dlq", "list", "--consumer", "someone-else", "--json")
    assert json.loads(other.stdout) == []

    # The bug is fixed: retry the first one. Within the duplicate window, with the event's own
    # id as its message id, the stream would drop it; the retry id gets it through.
    poison.clear()
    retried = await upr("dlq", "retry", str(letters[0]["seq"]))
    assert retried.exit_code == 0, retried.output
    assert f"retried {letters[0]['seq']}: event {first.id}" in retried.stdout
    await until(lambda: [e.id for e in handled] == [first.id])
    remaining = json.loads((await upr("dlq", "list", "--json")).stdout)
    assert [x["seq"] for x in remaining] == [letters[1]["seq"]]

    dropped = await upr("dlq", "drop", str(letters[1]["seq"]))
    assert dropped.exit_code == 0, dropped.output
    assert json.loads((await upr("dlq", "list", "--json")).stdout) == []
    assert [e.id for e in handled] == [first.id]

    missing = await upr("dlq", "retry", "999999")
    assert missing.exit_code == 1
    assert "no dead letter 999999" in missing.stderr
    nothing = await upr("dlq", "drop")
    assert nothing.exit_code == 2 and "--all" in nothing.stderr


async def test_retry_all_of_one_consumer_and_refuse_invalid_events(
    bus: Bus, cli_env: str, upr: Invoke
) -> None:
    handled: list[int] = []
    failing = True

    async def handler(env: Envelope) -> None:
        if failing:
            raise RuntimeError("database down")
        handled.append(env.data["n"])

    consumer = bus.consume("tcli-all", ["upr.test.thing.happened"], handler)
    for n in (1, 2, 3):
        await bus.publish(envelope(n))
    # Not a valid envelope: dead-lettered at once, and a retry could never succeed.
    await bus.js.publish(f"{cli_env}.test.thing.happened", b"{not json")
    await until(lambda: consumer.dead_lettered == 4, timeout=20)

    letters = json.loads((await upr("dlq", "list", "--json")).stdout)
    assert sorted(x["deliveries"] for x in letters) == [1, 2, 2, 2]
    assert sum("failed 2 times" in x["error"] for x in letters) == 3

    failing = False
    result = await upr("dlq", "retry", "--all", "--consumer", "tcli-all")
    assert result.exit_code == 1
    assert "not a valid event" in result.stderr
    await until(lambda: sorted(handled) == [1, 2, 3])
    left = json.loads((await upr("dlq", "list", "--json")).stdout)
    assert len(left) == 1 and left[0]["event_id"] is None

    assert (await upr("dlq", "drop", "--all")).exit_code == 0
    assert json.loads((await upr("dlq", "list", "--json")).stdout) == []
