"""Walk every route of every service: writes need a key of the right role, reads are public
except the admin and editor reads listed here (OWASP API1/API2/API5)."""

from __future__ import annotations

import httpx

from tests.security.conftest import Stack

REC = "KHM-2-118.17"
ROLES = ("assessor", "editor", "admin")

# (method, path) -> the least role that may call it. A route missing here fails the walk.
WRITES: dict[str, dict[tuple[str, str], str]] = {
    "catalog": {
        ("POST", "/v1/recommendations"): "editor",
        ("PATCH", "/v1/recommendations/{recommendation_id}"): "editor",
        ("POST", "/v1/recommendations/{recommendation_id}/responses"): "editor",
        ("PUT", "/v1/recommendations/{recommendation_id}/responsible-bodies"): "editor",
        ("PUT", "/v1/recommendations/{recommendation_id}/priorities"): "editor",
        ("POST", "/v1/imports"): "editor",
        ("POST", "/v1/clusters/recompute"): "editor",
        ("POST", "/v1/keys"): "admin",
        ("DELETE", "/v1/keys/{key_id}"): "admin",
    },
    "monitoring": {
        ("POST", "/v1/recommendations/{recommendation_id}/assessments"): "assessor",
        ("POST", "/v1/recommendations/{recommendation_id}/evidence"): "assessor",
        ("POST", "/v1/recommendations/{recommendation_id}/evidence/upload"): "assessor",
        ("POST", "/v1/evidence/{evidence_id}/verification"): "editor",
        ("POST", "/v1/recommendations/{recommendation_id}/indicators"): "assessor",
        ("POST", "/v1/indicators/{indicator_id}/measurements"): "assessor",
        ("POST", "/v1/deadlines"): "editor",
        ("PATCH", "/v1/deadlines/{deadline_id}"): "editor",
        ("POST", "/v1/deadlines/{deadline_id}/met"): "assessor",
        ("POST", "/v1/admin/read-model/rebuild"): "admin",
        ("POST", "/v1/keys"): "admin",
        ("DELETE", "/v1/keys/{key_id}"): "admin",
    },
    "notifications": {
        ("POST", "/v1/recipients"): "editor",
        ("PATCH", "/v1/recipients/{recipient_id}"): "editor",
        ("DELETE", "/v1/recipients/{recipient_id}"): "admin",
        ("POST", "/v1/subscriptions"): "editor",
        ("DELETE", "/v1/subscriptions/{subscription_id}"): "editor",
        ("POST", "/v1/keys"): "admin",
        ("DELETE", "/v1/keys/{key_id}"): "admin",
    },
}
# Self-service writes by design: no key, the signed link's token (or the SMS code) is the proof.
PUBLIC_WRITES = {
    "notifications": {
        ("POST", "/v1/subscribe"),
        ("POST", "/v1/confirm"),
        ("POST", "/v1/unsubscribe"),
        ("PUT", "/v1/preferences"),
    }
}
# Reads that need a key: the audit log and keys (admin), and personal data (recipients,
# subscriptions, deliveries: editors see addresses masked, only admins in clear).
KEYED_READS: dict[str, dict[str, str]] = {
    "catalog": {"/v1/audit": "admin", "/v1/keys": "admin"},
    "monitoring": {"/v1/audit": "admin", "/v1/keys": "admin"},
    "notifications": {
        "/v1/audit": "admin",
        "/v1/keys": "admin",
        "/v1/recipients": "editor",
        "/v1/recipients/{recipient_id}": "editor",
        "/v1/subscriptions": "editor",
        "/v1/deliveries": "editor",
    },
}


def _url(path: str) -> str:
    url = path.replace("{recommendation_id}", REC)
    url = url.replace("{state_under_review}", "KHM").replace("{cycle}", "2")
    while "{" in url:
        start, end = url.index("{"), url.index("}")
        url = url[:start] + "x" + url[end + 1 :]
    return url


async def _operations(client: httpx.AsyncClient) -> dict[tuple[str, str], bool]:
    """Every operation of the service's OpenAPI schema, and whether it reads a bearer key."""
    schema = (await client.get("/openapi.json")).json()
    return {
        (method.upper(), path): bool(op.get("security"))
        for path, ops in schema["paths"].items()
        for method, op in ops.items()
    }


async def _keys(client: httpx.AsyncClient, admin: dict[str, str]) -> dict[str, dict[str, str]]:
    keys = {}
    for role in ROLES:
        response = await client.post(
            "/v1/keys",
            json={"name": f"walk {role}", "role": role, "organisation": "ADHOC"},
            headers=admin,
        )
        assert response.status_code == 201, response.text
        keys[role] = {"Authorization": f"Bearer {response.json()['key']}"}
    return keys


def _below(role: str) -> list[str]:
    return list(ROLES[: ROLES.index(role)])


async def test_every_route_of_every_service_is_guarded(stack: Stack) -> None:
    await stack.import_demo()  # so that paths naming a recommendation reach the key check
    services = {
        "catalog": stack.catalog,
        "monitoring": stack.monitoring,
        "notifications": stack.notifications,
    }
    bad_keys = [
        {"Authorization": "Bearer upr_not-a-key-at-all"},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic YWRtaW46YWRtaW4="},
    ]
    for name, client in services.items():
        operations = await _operations(client)
        optional_key = {op for op, secured in operations.items() if secured}
        writes = {op for op in operations if op[0] in {"POST", "PUT", "PATCH", "DELETE"}}
        public_writes = PUBLIC_WRITES.get(name, set())
        assert writes == set(WRITES[name]) | public_writes, f"{name}: classify every write route"
        reads = {path for method, path in operations if method == "GET"}
        assert set(KEYED_READS[name]) <= reads
        keys = await _keys(client, stack.admin)

        for (method, path), least in WRITES[name].items():
            url = _url(path)
            where = (name, method, path)
            anonymous = await client.request(method, url, json={})
            assert anonymous.status_code == 401, where
            assert anonymous.headers["content-type"] == "application/problem+json"
            assert anonymous.headers["www-authenticate"] == "Bearer"
            for bad in bad_keys:
                response = await client.request(method, url, json={}, headers=bad)
                assert response.status_code == 401, (*where, bad)
            for role in _below(least):
                refused = await client.request(method, url, json={}, headers=keys[role])
                assert refused.status_code == 403, (*where, role, refused.text)
            allowed = await client.request(method, url, json={}, headers=keys[least])
            assert allowed.status_code not in {401, 403}, (*where, allowed.text)

        for method, path in public_writes:
            response = await client.request(method, _url(path), json={})
            assert response.status_code not in {401, 403, 500}, (name, method, path)
            forged = await client.request(
                method, _url(path), params={"token": "forged.token.value"}, json={}
            )
            assert forged.status_code in {403, 422}, (name, method, path, forged.text)

        for path in sorted(reads):
            url = _url(path)
            least = KEYED_READS[name].get(path)
            anonymous = await client.get(url)
            if least is None:
                assert anonymous.status_code not in {401, 403}, (name, path)
                if ("GET", path) in optional_key:
                    # A wrong key is refused even where none is needed, rather than ignored.
                    wrong = await client.get(url, headers=bad_keys[0])
                    assert wrong.status_code == 401, (name, path)
                continue
            assert anonymous.status_code == 401, (name, path)
            for role in _below(least):
                assert (await client.get(url, headers=keys[role])).status_code == 403, (
                    name,
                    path,
                    role,
                )
            allowed = await client.get(url, headers=keys[least])
            assert allowed.status_code not in {401, 403}, (name, path, allowed.text)


async def test_editors_never_read_addresses_only_admins_do(stack: Stack) -> None:
    created = await stack.recipient(
        name="Ministry of Justice focal point",
        kind="ministry",
        organisation="Ministry of Justice",
        email="focal.point@justice.gov.kh",
        phone="+85512345678",
        webhook_url="https://hooks.justice.gov.kh/upr/s3cr3t-path?token=abc",
        webhook_secret="whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=",
    )
    editor_key = (
        await stack.notifications.post(
            "/v1/keys", json={"name": "editor", "role": "editor"}, headers=stack.admin
        )
    ).json()["key"]
    editor = {"Authorization": f"Bearer {editor_key}"}
    for url in ("/v1/recipients", f"/v1/recipients/{created['id']}", "/v1/deliveries"):
        text = (await stack.notifications.get(url, headers=editor)).text
        assert "focal.point@justice.gov.kh" not in text and "+85512345678" not in text, url
        assert "s3cr3t-path" not in text and "token=abc" not in text, url
    by_admin = (
        await stack.notifications.get(f"/v1/recipients/{created['id']}", headers=stack.admin)
    ).json()
    assert by_admin["email"] == "focal.point@justice.gov.kh"
    assert by_admin["phone"] == "+85512345678"
    assert by_admin["webhook_url"] == "https://hooks.justice.gov.kh/upr/s3cr3t-path?token=abc"
    by_editor = (
        await stack.notifications.get(f"/v1/recipients/{created['id']}", headers=editor)
    ).json()
    assert by_editor["webhook_url"] == "https://hooks.justice.gov.kh/***"
