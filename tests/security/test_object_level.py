"""Object-level authorisation (OWASP API1/API3): organisations, restricted evidence, signed links.

Complements tests/monitoring (assessments for another organisation, deadlines, verification)
and tests/notifications (link purposes, tampered confirm links).
"""

from __future__ import annotations

import base64
import json

import pytest
from itsdangerous.timed import TimestampSigner

from services.notifications import links
from tests.security.conftest import Stack

REC = "KHM-2-118.17"
SECRET = "test-notifications-secret-0123456789"


async def test_an_assessor_cannot_write_or_read_for_another_organisation(stack: Stack) -> None:
    await stack.import_demo()
    adhoc = await stack.monitoring_key("ADHOC")
    licadho = await stack.monitoring_key("LICADHO")
    evidence_url = f"/v1/recommendations/{REC}/evidence"
    as_other = await stack.monitoring.post(
        evidence_url,
        params={"organisation": "LICADHO"},
        json={"kind": "media_article", "title": "Planted", "url": "https://example.org/p"},
        headers=adhoc,
    )
    assert as_other.status_code == 403, as_other.text
    upload_as_other = await stack.monitoring.post(
        f"{evidence_url}/upload",
        data={"kind": "ngo_report", "title": "Planted", "organisation": "LICADHO"},
        files={"file": ("p.pdf", b"%PDF-1.4 planted", "application/pdf")},
        headers=adhoc,
    )
    assert upload_as_other.status_code == 403, upload_as_other.text
    assert (await stack.monitoring.get(evidence_url, headers=stack.admin)).json() == []

    restricted = await stack.monitoring.post(
        f"{evidence_url}/upload",
        data={
            "kind": "field_observation",
            "title": "Interview notes",
            "visibility": "restricted",
            "reprisal_risk": "true",
            "submitter_name": "A. Researcher",
        },
        files={"file": ("notes.pdf", b"%PDF-1.4 interview notes", "application/pdf")},
        headers=adhoc,
    )
    assert restricted.status_code == 201, restricted.text
    evidence_id = restricted.json()["id"]
    for url in (f"/v1/evidence/{evidence_id}", f"/v1/evidence/{evidence_id}/file"):
        assert (await stack.monitoring.get(url)).status_code == 404, url
        assert (await stack.monitoring.get(url, headers=licadho)).status_code == 404, url
        assert (await stack.monitoring.get(url, headers=adhoc)).status_code == 200, url
    timeline = (
        await stack.monitoring.get(f"/v1/recommendations/{REC}/timeline", headers=licadho)
    ).text
    assert evidence_id not in timeline and "Interview notes" not in timeline
    # Under reprisal risk, even the submitting organisation's key does not get the name back.
    own = (await stack.monitoring.get(f"/v1/evidence/{evidence_id}", headers=adhoc)).json()
    assert own["submitter_name"] is None and own["submitter_organisation"] is None
    by_admin = (
        await stack.monitoring.get(f"/v1/evidence/{evidence_id}", headers=stack.admin)
    ).json()
    assert by_admin["submitter_name"] == "A. Researcher"

    # An assessment of LICADHO's cannot be made to look like ADHOC's, nor the reverse.
    forged = await stack.monitoring.post(
        f"/v1/recommendations/{REC}/assessments",
        json={
            "status": "in_progress",
            "assessor_type": "ngo",
            "organisation": "ADHOC",
        },
        headers=licadho,
    )
    assert forged.status_code == 403
    assessments = (await stack.monitoring.get(f"/v1/recommendations/{REC}/assessments")).json()
    assert assessments == []


def _token(recipient_id: str, purpose: links.Purpose = "preferences", version: int = 1) -> str:
    return links.make_token(SECRET, purpose, recipient_id, version)


def _swap_recipient(token: str, recipient_id: str) -> str:
    """The token with its payload naming another recipient, the signature left as it was."""
    payload, *rest = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["r"] = recipient_id
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return ".".join([forged, *rest])


async def test_a_signed_link_reaches_its_recipient_only(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = await stack.recipient(name="Recipient A", kind="ngo", email="a@example.org")
    b = await stack.recipient(name="Recipient B", kind="ngo", email="b@example.org")
    token_a = _token(a["id"])

    mine = await stack.notifications.get("/v1/preferences", params={"token": token_a})
    assert mine.status_code == 200 and mine.json()["recipient"]["id"] == a["id"]
    assert "b@example.org" not in mine.text

    changed = await stack.notifications.put(
        "/v1/preferences", params={"token": token_a}, json={"language": "km"}
    )
    assert changed.status_code == 200
    after = {
        r["id"]: r
        for r in (await stack.notifications.get("/v1/recipients", headers=stack.admin)).json()
    }
    assert after[a["id"]]["language"] == "km" and after[b["id"]]["language"] == "en"

    # A's token replayed with B's id: the signature no longer matches.
    replayed = _swap_recipient(token_a, b["id"])
    for method, path, body in (
        ("GET", "/v1/preferences", None),
        ("PUT", "/v1/preferences", {"language": "km"}),
        ("POST", "/v1/unsubscribe", None),
    ):
        response = await stack.notifications.request(
            method, path, params={"token": replayed}, json=body
        )
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["errors"][0]["field"] == "query.token"
    # Signed with another secret, or for another purpose: refused too.
    foreign = links.make_token("some-other-secret-0123456789", "preferences", b["id"], 1)
    assert (
        await stack.notifications.get("/v1/preferences", params={"token": foreign})
    ).status_code == 403
    assert (
        await stack.notifications.post(
            "/v1/unsubscribe", params={"token": _token(b["id"], "preferences")}
        )
    ).status_code == 403
    b_now = (await stack.notifications.get(f"/v1/recipients/{b['id']}", headers=stack.admin)).json()
    assert b_now["language"] == "en" and b_now["unsubscribed"] is False

    # Tokens expire: one signed 31 days ago is refused as expired.
    now = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: now(self) - 31 * 24 * 3600)
    old = _token(a["id"])
    monkeypatch.undo()
    expired = await stack.notifications.get("/v1/preferences", params={"token": old})
    assert expired.status_code == 403 and "expired" in expired.json()["detail"]

    # Erasing a recipient retires every link it was sent.
    erased = await stack.notifications.delete(f"/v1/recipients/{a['id']}", headers=stack.admin)
    assert erased.status_code == 204
    retired = await stack.notifications.get("/v1/preferences", params={"token": token_a})
    assert retired.status_code == 403


async def test_a_confirm_link_cannot_confirm_another_recipients_subscription(
    stack: Stack,
) -> None:
    for address in ("a@example.org", "b@example.org"):
        response = await stack.notifications.post("/v1/subscribe", json={"email": address})
        assert response.status_code == 202
    subscriptions = (await stack.notifications.get("/v1/subscriptions", headers=stack.admin)).json()
    recipients = {
        r["email"]: r["id"]
        for r in (await stack.notifications.get("/v1/recipients", headers=stack.admin)).json()
    }
    sub_b = next(s for s in subscriptions if s["recipient_id"] == recipients["b@example.org"])
    # Correctly signed, but pairing A with B's subscription: refused.
    mixed = links.make_token(SECRET, "confirm", recipients["a@example.org"], 1, sub_b["id"])
    response = await stack.notifications.post("/v1/confirm", json={"token": mixed})
    assert response.status_code == 403
    wrong_code = await stack.notifications.post(
        "/v1/confirm", json={"phone": "+85512345678", "code": "000000"}
    )
    assert wrong_code.status_code == 403
    after = (await stack.notifications.get("/v1/subscriptions", headers=stack.admin)).json()
    assert not any(s["confirmed"] for s in after)
