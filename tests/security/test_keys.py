"""API keys (OWASP API2): stored hashed, shown once, revocable at once."""

from __future__ import annotations

import hashlib

from sqlalchemy import text

from shared.auth import revoke_key
from tests.security.conftest import Stack


async def test_keys_are_hashed_shown_once_and_revocable(stack: Stack) -> None:
    created = await stack.catalog.post(
        "/v1/keys", json={"name": "editor of OHCHR", "role": "editor"}, headers=stack.admin
    )
    assert created.status_code == 201
    plaintext, key_id = created.json()["key"], created.json()["id"]
    assert plaintext.startswith("upr_") and len(plaintext) >= 40
    editor = {"Authorization": f"Bearer {plaintext}"}

    listed = await stack.catalog.get("/v1/keys", headers=stack.admin)
    assert plaintext not in listed.text and "key_hash" not in listed.text
    assert all("key" not in item for item in listed.json())

    engine = stack.catalog._transport.app.state.engine  # type: ignore[attr-defined]
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM api_keys"))).mappings().all()
        audit = (await conn.execute(text("SELECT changes::text FROM audit_log"))).scalars().all()
    [row] = [r for r in rows if r["id"] == key_id]
    assert row["key_hash"] == hashlib.sha256(plaintext.encode()).hexdigest()
    assert all(plaintext not in str(value) for r in rows for value in r.values())
    assert all(plaintext[4:20] not in str(value) for r in rows for value in r.values())
    assert audit and all(plaintext not in entry for entry in audit)

    recompute = ("/v1/clusters/recompute", {"state_under_review": "KHM"})
    assert (
        await stack.catalog.post(recompute[0], params=recompute[1], headers=editor)
    ).status_code == 200
    revoked = await stack.catalog.delete(f"/v1/keys/{key_id}", headers=stack.admin)
    assert revoked.status_code == 204
    refused = await stack.catalog.post(recompute[0], params=recompute[1], headers=editor)
    assert refused.status_code == 401
    assert "revoked" in refused.json()["detail"]
    again = await stack.catalog.delete(f"/v1/keys/{key_id}", headers=stack.admin)
    assert again.status_code == 404
    [listed_key] = [
        k
        for k in (await stack.catalog.get("/v1/keys", headers=stack.admin)).json()
        if k["id"] == key_id
    ]
    assert listed_key["revoked_at"] is not None


async def test_revoke_key_is_usable_without_http(stack: Stack) -> None:
    """shared.auth.revoke_key: what `upr keys revoke` calls."""
    created = await stack.monitoring.post(
        "/v1/keys", json={"name": "ngo", "role": "assessor", "organisation": "ADHOC"},
        headers=stack.admin,
    )  # fmt: skip
    key_id = created.json()["id"]
    factory = stack.monitoring._transport.app.state.session_factory  # type: ignore[attr-defined]
    async with factory() as session, session.begin():
        assert await revoke_key(session, key_id) is True
        assert await revoke_key(session, key_id) is False
        assert await revoke_key(session, "no-such-key") is False
    headers = {"Authorization": f"Bearer {created.json()['key']}"}
    response = await stack.monitoring.post(
        "/v1/recommendations/KHM-2-118.17/assessments", json={}, headers=headers
    )
    assert response.status_code == 401
