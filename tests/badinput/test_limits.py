"""Limits and hostile files: every excess is a 4xx problem+json naming what was wrong.

Upload type and size of evidence are in tests/monitoring/test_monitoring.py; decoding unit tests
in tests/catalog/test_formats.py. This adds the HTTP-level limits and the import/export edges.
"""

from __future__ import annotations

import csv
import io

import httpx
import pytest

from services.catalog.settings import CatalogSettings

MAX_BODY = 16 * 1024
PROBLEM = "application/problem+json"


@pytest.fixture
def catalog_settings(postgres_url, nats_url, namespace, admin_key) -> CatalogSettings:
    return CatalogSettings(
        environment="test",
        database_url=postgres_url,
        nats_url=nats_url,
        nats_namespace=namespace,
        admin_api_key=admin_key,
        outbox_poll_interval_s=0.2,
        max_body_bytes=MAX_BODY,
    )


def fields(response: httpx.Response) -> list[str]:
    assert response.headers["content-type"] == PROBLEM, response.text
    return [e["field"] for e in response.json().get("errors") or []]


async def test_bodies_over_the_limit_are_413_declared_or_streamed(catalog, admin) -> None:
    big = b"a,b\n" + b"x" * MAX_BODY
    declared = await catalog.post(
        "/v1/imports", params={"format": "csv"}, content=big, headers=admin
    )
    assert declared.status_code == 413 and fields(declared) == ["body"]

    async def chunks():
        for _ in range(8):
            yield b"y" * 4096

    streamed = await catalog.post(
        "/v1/imports", params={"format": "csv"}, content=chunks(), headers=admin
    )
    assert streamed.status_code == 413 and fields(streamed) == ["body"]
    as_json = await catalog.post(
        "/v1/recommendations", json={"text": "x" * MAX_BODY}, headers=admin
    )
    assert as_json.status_code == 413
    assert (await catalog.get("/v1/recommendations")).json()["total"] == 0


@pytest.mark.parametrize(
    ("url", "params", "field"),
    [
        ("/v1/recommendations", {"limit": "501"}, "query.limit"),
        ("/v1/recommendations", {"limit": "0"}, "query.limit"),
        ("/v1/recommendations", {"q": "x" * 201}, "query.q"),
        ("/v1/recommendations", {"cursor": "c" * 501}, "query.cursor"),
        ("/v1/recommendations", {"limit": ["5", "6"]}, "query.limit"),
        ("/v1/recommendations", {"": "x"}, "query"),
        ("/v1/audit", {"limit": "501"}, "query.limit"),
        # A parameter the route does not take is refused on every route, not ignored.
        ("/v1/audit", {"kye_id": "x"}, "query.kye_id"),
        ("/v1/keys", {"role": "admin"}, "query.role"),
        ("/v1/issues", {"lang": "km"}, "query.lang"),
        ("/v1/recommendations", {"stat": "KHM"}, "query.stat"),
        ("/v1/recommendations", {"q": "nul\x00byte"}, "query.q"),
    ],
)
async def test_page_sizes_and_query_lengths(catalog, admin, url, params, field) -> None:
    response = await catalog.get(url, params=params, headers=admin)
    assert response.status_code == 422, response.text
    assert field in fields(response)


async def test_string_lengths_are_named(catalog, admin) -> None:
    base = {"state_under_review": "KHM", "cycle": 2, "number": "1.1", "text": "Ratify it"}
    cases = [
        ({**base, "text": "x" * 5001}, "body.text"),
        ({**base, "document": "d" * 81}, "body.document"),
        ({**base, "affected_groups": ["g" * 201]}, "body.affected_groups.0"),
        ({**base, "recommending_states": ["BEL"] * 61}, "body.recommending_states"),
        ({**base, "text": "Ratify\x00it"}, "body"),
    ]
    for body, field in cases:
        response = await catalog.post("/v1/recommendations", json=body, headers=admin)
        assert response.status_code == 422, (field, response.text)
        assert field in fields(response), (field, response.json())
    too_long_id = await catalog.get("/v1/recommendations/" + "K" * 121)
    assert too_long_id.status_code == 422 and "path.recommendation_id" in fields(too_long_id)
    assert (await catalog.get("/v1/recommendations")).json()["total"] == 0


@pytest.mark.parametrize(
    ("content", "fmt", "message"),
    [
        (b'id,text\n"KHM-2-1,unclosed quote\n', "csv", ""),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "csv", "UTF-8"),
        ("id;text\nKHM-2-1;Côte d'Ivoire".encode("latin-1"), "upr-info-csv", "UTF-8"),
        ("SuR,Recommendation\nx".encode("utf-16-le"), "upr-info-csv", "NUL"),
        (b"[{]", "json", ""),
        (b"[" * 10_000, "json", "nested too deeply"),
        (b"\xef\xbb\xbf", "positions-csv", ""),
    ],
    ids=[
        "unclosed-quote",
        "binary",
        "latin-1",
        "utf16-no-bom",
        "bad-json",
        "deep-json",
        "bom-only",
    ],
)
async def test_malformed_imports_are_422_naming_the_body(
    catalog, admin, content, fmt, message
) -> None:
    response = await catalog.post(
        "/v1/imports", params={"format": fmt}, content=content, headers=admin
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    assert message in response.json()["detail"]
    assert (await catalog.get("/v1/recommendations")).json()["total"] == 0


HOSTILE = {
    "text": "+cmd|' /C calc'!A0 ratify the convention",
    "document": '=HYPERLINK("http://evil")',
    "paragraph": "-2+3",
    "affected_groups": ["@SUM(A1:A9)", "women"],
}


async def test_every_formula_start_is_defused_in_csv_and_round_trips(catalog, admin) -> None:
    body = {
        "state_under_review": "KHM",
        "cycle": 2,
        "number": "7.7",
        "recommending_states": ["BEL"],
        **HOSTILE,
    }
    created = await catalog.post("/v1/recommendations", json=body, headers=admin)
    assert created.status_code == 201, created.text
    for prefix in ("\t", "\r"):  # kept inside a cell; only a leading one is dangerous
        assert prefix not in created.json()["text"][:1]

    exported = (await catalog.get("/v1/recommendations/export", params={"format": "csv"})).text
    [row] = list(csv.DictReader(io.StringIO(exported)))
    for cell in row.values():
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    assert row["text"] == "'" + HOSTILE["text"]
    assert row["document"] == "'" + HOSTILE["document"]
    assert row["paragraph"] == "'" + HOSTILE["paragraph"]
    assert row["affected_groups"].startswith("'@SUM")
    as_json = (await catalog.get("/v1/recommendations/export", params={"format": "json"})).json()
    assert as_json[0]["text"] == HOSTILE["text"]  # JSON is data, not a spreadsheet: exact

    again = await catalog.post(
        "/v1/imports", params={"format": "csv"}, content=exported.encode(), headers=admin
    )
    assert again.status_code == 200 and again.json()["unchanged"] == 1, again.text


@pytest.mark.parametrize("reader", ["csv", "upr-info-csv", "positions-csv"])
def test_a_cell_over_the_csv_field_limit_is_a_format_error(reader: str) -> None:
    from services.catalog import exports, formats

    read = {
        "csv": exports.read_csv,
        "upr-info-csv": formats.read_upr_info_csv,
        "positions-csv": formats.read_positions_csv,
    }[reader]
    huge = '"' + "x" * 200_000 + '"'
    for text in (huge + "\n", "text,state_under_review\n" + huge + ",KHM\n"):
        with pytest.raises(formats.FormatError):
            list(read(text))


def test_defuse_covers_tab_and_carriage_return() -> None:
    from services.catalog.exports import csv_header

    assert csv_header().startswith("id,")
    for prefix in ("=", "+", "-", "@", "\t", "\r"):
        from services.catalog.exports import _defuse, _restore

        assert _defuse(prefix + "1") == "'" + prefix + "1"
        assert _restore(_defuse(prefix + "1")) == prefix + "1"
    assert _defuse("'plain") == "'plain" and _restore("'plain") == "'plain"
