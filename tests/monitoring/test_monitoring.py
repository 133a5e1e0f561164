"""Monitoring across the real broker: read model, assessments, status, evidence, stats."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

from sqlalchemy import func, select, update

from shared.events import Envelope
from shared.outbox import OutboxMessage
from tests.monitoring.conftest import Stack

REC = "KHM-2-118.17"


async def assess(stack: Stack, headers: dict, **body) -> dict:
    payload = {"status": "in_progress", "assessor_type": "ngo", "dimension": "both", **body}
    response = await stack.monitoring.post(
        f"/v1/recommendations/{REC}/assessments", json=payload, headers=headers
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_catalog_events_build_the_read_model_and_review_calendar(stack: Stack) -> None:
    assert (await stack.monitoring.get(f"/v1/recommendations/{REC}/status")).status_code == 404
    await stack.import_demo()
    await stack.wait_tracked(205)
    status = (await stack.monitoring.get(f"/v1/recommendations/{REC}/status")).json()
    assert status == {
        "recommendation_id": REC,
        "status": "no_data",
        "by_assessor_type": {},
        "by_dimension": {},
        "disagreement": False,
        "assessments": 0,
    }
    calendar = (await stack.monitoring.get("/v1/reviews/KHM/2/calendar")).json()
    assert [(d["kind"], d["due_on"]) for d in calendar] == [
        ("response_to_pending", "2014-06-28"),
        ("mid_term_report", "2016-07-28"),
        ("stakeholder_submission", "2017-12-28"),
        ("next_review", "2018-07-28"),
    ]
    by_response = (await stack.monitoring.get("/v1/stats", params={"group_by": "response"})).json()
    assert {g["key"]: g["total"] for g in by_response["groups"]} == {"supported": 163, "noted": 42}


async def test_an_assessment_changes_the_status_once(stack: Stack, events) -> None:
    await events.start()
    await stack.import_demo()
    await stack.wait_tracked()
    adhoc = await stack.key("assessor", "ADHOC")
    ministry = await stack.key("assessor", "Ministry of Information")

    await assess(stack, adhoc, status="not_started", assessed_on="2016-05-01")
    [changed] = await events.wait_for(1, type="upr.monitoring.status.changed")
    data = changed["data"]
    assert (data["previous_status"], data["status"]) == ("no_data", "not_started")
    assert data["recommendation"]["recommending_states"][0]["iso3"] == "BEL"
    assert data["recommendation"]["number"] == "118.17"

    await assess(stack, adhoc, status="not_started", assessed_on="2016-06-01", dimension="law")
    await events.wait_for(2, type="upr.monitoring.assessment.recorded")
    await assess(
        stack,
        ministry,
        status="fully_implemented",
        assessor_type="government",
        dimension="law",
        assessed_on="2016-07-01",
        summary="Access to information law drafted",
    )
    await events.wait_for(3, type="upr.monitoring.assessment.recorded")
    changes = await events.wait_for(2, type="upr.monitoring.status.changed")
    assert [c["data"]["status"] for c in changes] == ["not_started", "fully_implemented"]

    view = (await stack.monitoring.get(f"/v1/recommendations/{REC}/status")).json()
    assert view["status"] == "fully_implemented"
    assert view["by_assessor_type"]["ngo"]["status"] == "not_started"
    assert view["by_assessor_type"]["government"]["status"] == "fully_implemented"
    assert view["disagreement"] is True
    assert view["assessments"] == 3

    # An older assessment recorded late does not move the consolidated status.
    await assess(stack, adhoc, status="regressed", assessed_on="2015-01-01")
    await events.wait_for(4, type="upr.monitoring.assessment.recorded")
    await asyncio.sleep(0.5)
    assert len([e for e in events.events if e["type"] == "upr.monitoring.status.changed"]) == 2
    timeline = (await stack.monitoring.get(f"/v1/recommendations/{REC}/timeline")).json()
    assert [e["date"] for e in timeline] == sorted(e["date"] for e in timeline)


async def test_redelivered_events_have_one_effect(
    stack: Stack, events, nats_client, namespace
) -> None:
    await events.start()
    await stack.import_demo()
    await stack.wait_tracked()
    adhoc = await stack.key("assessor", "ADHOC")
    await assess(stack, adhoc, status="in_progress")
    await events.wait_for(1, type="upr.monitoring.status.changed")

    # The catalog event for 118.17 delivered again (a new message id, same event id).
    [created] = [
        e
        for e in await events.wait_for(205, type="upr.catalog.recommendation.created")
        if e["subject"] == REC
    ]
    envelope = {k: v for k, v in created.items() if k != "subject"}
    js = nats_client.jetstream()
    await js.publish(
        f"{namespace}.catalog.recommendation.created",
        json.dumps(envelope).encode(),
        headers={"Nats-Msg-Id": "redelivery-" + envelope["id"]},
    )
    # The monitoring outbox relays the same rows again (a relay that died before marking).
    app = stack.monitoring._transport.app  # type: ignore[attr-defined]
    async with app.state.session_factory() as session:
        await session.execute(update(OutboxMessage).values(published_at=None))
        await session.commit()
        app.state.relay.wake()
    async with asyncio.timeout(10):
        while True:
            async with app.state.session_factory() as session:
                left = await session.scalar(
                    select(func.count()).where(OutboxMessage.published_at.is_(None))
                )
            if left == 0:
                break
            await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)
    status = (await stack.monitoring.get(f"/v1/recommendations/{REC}/status")).json()
    assert status["status"] == "in_progress" and status["assessments"] == 1
    changed = [e for e in events.events if e["type"] == "upr.monitoring.status.changed"]
    assert len(changed) == 1


async def test_poison_events_are_dead_lettered_and_the_consumer_goes_on(
    stack: Stack, nats_client, namespace
) -> None:
    js = nats_client.jetstream()
    subject = f"{namespace}.catalog.recommendation.created"
    await asyncio.sleep(0.5)
    await js.publish(subject, b"{not json", headers={"Nats-Msg-Id": "p1"})
    impossible = Envelope(
        source="upr/catalog",
        type="upr.catalog.recommendation.created",
        subject="KHM-2-1.1",
        dataschema="urn:x",
        data={"recommendation": {"id": "KHM-2-1.1", "text": "no version, no state"}},
    )
    await js.publish(subject, impossible.model_dump_json().encode(), headers={"Nats-Msg-Id": "p2"})
    await stack.import_demo()
    await stack.wait_tracked(205)

    dlq = await js.pull_subscribe(
        f"{namespace}_dlq.monitoring-catalog", durable="inspect", stream=f"{namespace.upper()}_DLQ"
    )
    msgs = await dlq.fetch(2, timeout=10)
    errors = [m.headers["Upr-Dlq-Error"] for m in msgs]
    assert any("not a valid event envelope" in e for e in errors)
    assert any("cannot read upr.catalog.recommendation.created" in e for e in errors)


async def test_bad_assessments_are_4xx_and_write_nothing(stack: Stack, events) -> None:
    await events.start()
    await stack.import_demo()
    await stack.wait_tracked()
    adhoc = await stack.key("assessor", "ADHOC")
    tomorrow = (dt.date.today() + dt.timedelta(days=1)).isoformat()
    ngo = {"status": "in_progress", "assessor_type": "ngo"}
    cases = [
        ({**ngo, "status": "done"}, "body.status"),
        ({**ngo, "assessed_on": tomorrow}, "body.assessed_on"),
        ({**ngo, "evidence_ids": ["nope"]}, "body.evidence_ids"),
    ]
    for body, field in cases:
        response = await stack.monitoring.post(
            f"/v1/recommendations/{REC}/assessments", json=body, headers=adhoc
        )
        assert response.status_code == 422, response.text
        assert field in [e["field"] for e in response.json()["errors"]]
    unknown = await stack.monitoring.post(
        "/v1/recommendations/KHM-2-999.9/assessments",
        json={"status": "in_progress", "assessor_type": "ngo"},
        headers=adhoc,
    )
    assert unknown.status_code == 404
    other_org = await stack.monitoring.post(
        f"/v1/recommendations/{REC}/assessments",
        json={"status": "in_progress", "assessor_type": "ngo", "organisation": "LICADHO"},
        headers=adhoc,
    )
    assert other_org.status_code == 403
    # A key that says what kind of organisation it speaks for cannot speak as another kind.
    created = await stack.monitoring.post(
        "/v1/keys",
        json={"name": "LICADHO", "role": "assessor", "organisation": "LICADHO",
              "organisation_type": "ngo"},
        headers=stack.admin,
    )  # fmt: skip
    assert created.status_code == 201 and created.json()["organisation_type"] == "ngo"
    licadho = {"Authorization": f"Bearer {created.json()['key']}"}
    as_government = await stack.monitoring.post(
        f"/v1/recommendations/{REC}/assessments",
        json={"status": "fully_implemented", "assessor_type": "government"},
        headers=licadho,
    )
    assert as_government.status_code == 403, as_government.text
    assert as_government.json()["errors"][0]["field"] == "body.assessor_type"
    anonymous = await stack.monitoring.post(
        f"/v1/recommendations/{REC}/assessments",
        json={"status": "in_progress", "assessor_type": "ngo"},
    )
    assert anonymous.status_code == 401
    assert (await stack.monitoring.get(f"/v1/recommendations/{REC}/assessments")).json() == []
    await asyncio.sleep(0.5)
    assert not [e for e in events.events if e["type"].startswith("upr.monitoring.assessment")]


async def test_evidence_visibility_and_reprisal_risk(stack: Stack) -> None:
    await stack.import_demo()
    await stack.wait_tracked()
    adhoc = await stack.key("assessor", "ADHOC")
    licadho = await stack.key("assessor", "LICADHO")
    editor = await stack.key("editor", "OHCHR Cambodia")
    restricted = await stack.monitoring.post(
        f"/v1/recommendations/{REC}/evidence",
        json={
            "kind": "field_observation",
            "title": "Interviews with journalists in Phnom Penh",
            "visibility": "restricted",
            "reprisal_risk": True,
            "submitter_name": "A. Researcher",
        },
        headers=adhoc,
    )
    assert restricted.status_code == 201, restricted.text
    evidence_id = restricted.json()["id"]
    public = await stack.monitoring.post(
        f"/v1/recommendations/{REC}/evidence",
        json={
            "kind": "media_article",
            "title": "Draft law published",
            "url": "https://example.org/a",
        },
        headers=licadho,
    )
    assert public.status_code == 201

    async def titles(headers: dict | None) -> list[str]:
        response = await stack.monitoring.get(
            f"/v1/recommendations/{REC}/evidence", headers=headers
        )
        return sorted(e["title"] for e in response.json())

    assert await titles(None) == ["Draft law published"]
    assert await titles(licadho) == ["Draft law published"]
    assert len(await titles(adhoc)) == 2
    assert len(await titles(editor)) == 2
    assert (await stack.monitoring.get(f"/v1/evidence/{evidence_id}")).status_code == 404
    by_editor = (await stack.monitoring.get(f"/v1/evidence/{evidence_id}", headers=editor)).json()
    assert by_editor["submitter_name"] is None and by_editor["submitter_organisation"] is None
    by_admin = (
        await stack.monitoring.get(f"/v1/evidence/{evidence_id}", headers=stack.admin)
    ).json()
    assert by_admin["submitter_name"] == "A. Researcher"
    assert by_admin["submitter_organisation"] == "ADHOC"
    timeline = (await stack.monitoring.get(f"/v1/recommendations/{REC}/timeline")).json()
    assert all(entry["id"] != evidence_id for entry in timeline)

    verified = await stack.monitoring.post(
        f"/v1/evidence/{evidence_id}/verification",
        json={"status": "disputed", "reason": "dates do not match"},
        headers=editor,
    )
    assert verified.status_code == 200
    assert verified.json()["verification"]["status"] == "disputed"
    refused = await stack.monitoring.post(
        f"/v1/evidence/{evidence_id}/verification", json={"status": "verified"}, headers=adhoc
    )
    assert refused.status_code == 403


async def test_uploads_are_checked_and_stored_by_hash(stack: Stack, tmp_path) -> None:
    await stack.import_demo()
    await stack.wait_tracked()
    adhoc = await stack.key("assessor", "ADHOC")
    form = {"kind": "ngo_report", "title": "ADHOC annual report 2016"}
    url = f"/v1/recommendations/{REC}/evidence/upload"
    pdf = b"%PDF-1.4\n" + b"0" * 1000
    ok = await stack.monitoring.post(
        url, data=form, files={"file": ("report.pdf", pdf, "application/pdf")}, headers=adhoc
    )
    assert ok.status_code == 201, ok.text
    stored = ok.json()["file"]
    import hashlib

    assert stored["sha256"] == hashlib.sha256(pdf).hexdigest()
    assert (tmp_path / "evidence" / stored["sha256"]).read_bytes() == pdf
    download = await stack.monitoring.get(stored["href"])
    assert download.content == pdf and download.headers["content-type"] == "application/pdf"

    fake_pdf = await stack.monitoring.post(
        url,
        data=form,
        files={"file": ("x.pdf", b"MZ\x90\x00binary", "application/pdf")},
        headers=adhoc,
    )
    assert fake_pdf.status_code == 415
    exe = await stack.monitoring.post(
        url, data=form, files={"file": ("x.exe", b"MZ", "application/x-msdownload")}, headers=adhoc
    )
    assert exe.status_code == 415
    too_big = await stack.monitoring.post(
        url,
        data=form,
        files={"file": ("big.pdf", b"%PDF-" + b"0" * 70_000, "application/pdf")},
        headers=adhoc,
    )
    assert too_big.status_code == 413
    bad_kind = await stack.monitoring.post(
        url,
        data={**form, "kind": "rumour"},
        files={"file": ("r.pdf", pdf, "application/pdf")},
        headers=adhoc,
    )
    assert bad_kind.status_code == 422
    evidence = (await stack.monitoring.get(f"/v1/recommendations/{REC}/evidence")).json()
    assert len(evidence) == 1
    assert sorted(p.name for p in (tmp_path / "evidence").iterdir()) == [stored["sha256"]]


async def test_indicators_deadlines_and_stats(stack: Stack, events) -> None:
    await events.start()
    await stack.import_demo()
    await stack.wait_tracked()
    ministry = await stack.key("assessor", "Ministry of Information")
    editor = await stack.key("editor", "OHCHR Cambodia")

    indicator = await stack.monitoring.post(
        f"/v1/recommendations/{REC}/indicators",
        json={"name": "Information requests answered", "kind": "quantitative", "unit": "%",
              "baseline_value": 0, "target_value": 80, "target_date": "2018-12-31"},
        headers=ministry,
    )  # fmt: skip
    assert indicator.status_code == 201, indicator.text
    indicator_id = indicator.json()["id"]
    measured = await stack.monitoring.post(
        f"/v1/indicators/{indicator_id}/measurements",
        json={"value": 35, "measured_on": "2017-06-30"},
        headers=ministry,
    )
    assert measured.status_code == 201
    # Who measured it is kept: an assessor always for its own organisation.
    assert measured.json()["organisation"] == "Ministry of Information"
    as_other = await stack.monitoring.post(
        f"/v1/indicators/{indicator_id}/measurements",
        json={"value": 90, "measured_on": "2017-06-30", "organisation": "LICADHO"},
        headers=ministry,
    )
    assert as_other.status_code == 403, as_other.text
    wrong = await stack.monitoring.post(
        f"/v1/indicators/{indicator_id}/measurements",
        json={"text_value": "better", "measured_on": "2017-06-30"},
        headers=ministry,
    )
    assert wrong.status_code == 422
    [event] = await events.wait_for(1, type="upr.monitoring.indicator.measured")
    assert event["data"]["measurement"]["value"] == 35

    deadline = await stack.monitoring.post(
        "/v1/deadlines",
        json={"title": "Report on the access to information law", "recommendation_id": REC,
              "responsible_body": "Ministry of Information", "due_on": "2017-01-31",
              "recurrence_months": 12},
        headers=editor,
    )  # fmt: skip
    assert deadline.status_code == 201, deadline.text
    assert deadline.json()["overdue"] is True
    await events.wait_for(1, type="upr.monitoring.deadline.set", subject=REC)

    adhoc = await stack.key("assessor", "ADHOC")
    not_theirs = await stack.monitoring.post(
        f"/v1/deadlines/{deadline.json()['id']}/met",
        json={"met_on": "2017-01-30"},
        headers=adhoc,
    )
    assert not_theirs.status_code == 403, not_theirs.text
    assert not_theirs.json()["title"] == "Not your deadline"

    await stack.monitoring.post(
        f"/v1/recommendations/{REC}/evidence",
        json={"kind": "government_report", "title": "Ministry report 2016"},
        headers=ministry,
    )
    [met] = await events.wait_for(1, type="upr.monitoring.deadline.met")
    assert met["data"]["deadline"]["id"] == deadline.json()["id"]
    open_ones = (
        await stack.monitoring.get(
            "/v1/deadlines", params={"recommendation_id": REC, "state": "open"}
        )
    ).json()
    assert [d["due_on"] for d in open_ones] == ["2018-01-31"]

    await assess(stack, ministry, status="partially_implemented", assessor_type="government")
    stats = (
        await stack.monitoring.get("/v1/stats", params={"group_by": "recommending_state"})
    ).json()
    belgium = next(g for g in stats["groups"] if g["key"] == "BEL")
    assert belgium["by_status"]["partially_implemented"] == 1
    assert belgium["triggered_action"] == 1
    assert stats["overall"]["total"] == 205
    assert stats["overall"]["by_status"]["no_data"] == 204
    by_issue = (
        await stack.monitoring.get(
            "/v1/stats", params={"group_by": "issue", "response": "supported"}
        )
    ).json()
    assert sum(g["total"] for g in by_issue["groups"]) >= 163


async def test_the_read_model_rebuilds_from_the_stream(stack: Stack) -> None:
    await stack.import_demo()
    await stack.wait_tracked()
    app = stack.monitoring._transport.app  # type: ignore[attr-defined]
    from services.monitoring.models import TrackedRecommendation

    async with app.state.session_factory() as session:
        await session.execute(update(TrackedRecommendation).values(text="stale"))
        await session.commit()
    response = await stack.monitoring.post("/v1/admin/read-model/rebuild", headers=stack.admin)
    assert response.status_code == 202
    async with asyncio.timeout(20):
        while True:
            async with app.state.session_factory() as session:
                stale = await session.scalar(
                    select(func.count()).where(TrackedRecommendation.text == "stale")
                )
            if stale == 0:
                break
            await asyncio.sleep(0.2)


async def test_monitoring_key_walk(stack: Stack) -> None:
    """Every write route refuses a missing key (401)."""
    schema = (await stack.monitoring.get("/openapi.json")).json()
    for path, methods in schema["paths"].items():
        for method in methods:
            if method in {"post", "put", "patch", "delete"}:
                url = path.replace("{recommendation_id}", REC)
                for name in ("{evidence_id}", "{indicator_id}", "{deadline_id}", "{key_id}"):
                    url = url.replace(name, "x")
                response = await stack.monitoring.request(method.upper(), url, json={})
                assert response.status_code == 401, (method, path, response.status_code)
