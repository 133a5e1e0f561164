"""Import readers: decoding, UPR Info CSV, positions CSV, Working Group report text."""

from __future__ import annotations

import codecs
import csv
import importlib.util
import re
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from services.catalog.countries import UnknownCountry
from services.catalog.formats import (
    FormatError,
    RowResult,
    decode_upload,
    read_positions_csv,
    read_report_text,
    read_upr_info_csv,
)
from services.catalog.vocabulary import RESPONSE_POSITIONS

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"
LEGACY = SHARED_DATA / "upr_info_legacy_2014.csv"
DEMO = REPO / "services" / "catalog" / "demo" / "cambodia_upr2_2014_recommendations.csv"
SAMPLES = Path(__file__).parent / "samples"
CAMBODIA_REPORT = SAMPLES / "cambodia_a_hrc_26_16.txt"
NUMBERING_REPORT = SAMPLES / "report_numbering.txt"

RECORD_KEYS = {
    "mechanism",
    "body",
    "document",
    "number",
    "paragraph",
    "text",
    "cycle",
    "session",
    "review_date",
    "state_under_review",
    "recommending_states",
    "responses",
    "issues",
    "action_category",
    "affected_groups",
    "sdg_goals",
}
RESPONSE_KEYS = {"position", "declared_label", "source", "date", "note"}
UPR_INFO_HEADER = "SuR,Recommendation,RS,Response,ActionCategory,Issue,Cycle\n"

needs_shared = pytest.mark.skipif(
    not LEGACY.exists(), reason=f"reference data not found at {SHARED_DATA}"
)


def _check_shape(results: list[RowResult]) -> None:
    for result in results:
        assert (result.record is None) != (result.error is None), result
        if result.record is not None:
            assert set(result.record) == RECORD_KEYS
            assert result.record["mechanism"] == "upr"
            assert result.record["recommending_states"]
            for response in result.record["responses"]:
                assert set(response) == RESPONSE_KEYS
                assert response["position"] in RESPONSE_POSITIONS


def _demo_rows() -> list[dict[str, str]]:
    with DEMO.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


# --- decode_upload ----------------------------------------------------------------------------


def test_decode_plain_utf8() -> None:
    assert decode_upload("Côte d'Ivoire".encode()) == "Côte d'Ivoire"


def test_decode_utf8_with_bom() -> None:
    assert decode_upload(codecs.BOM_UTF8 + "Türkiye\n".encode()) == "Türkiye\n"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_decode_utf16_with_bom(encoding: str) -> None:
    text = "SuR,Recommendation\nTürkiye,Ratify\n"
    bom = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE}.get(encoding, b"")
    assert decode_upload(bom + text.encode(encoding)) == text


def test_decode_rejects_latin1() -> None:
    with pytest.raises(FormatError, match="not UTF-8 or UTF-16") as info:
        decode_upload("Côte d'Ivoire".encode("latin-1"))
    assert "0xF4" in str(info.value)


def test_decode_rejects_nul_bytes() -> None:
    with pytest.raises(FormatError, match="NUL"):
        decode_upload(b"SuR,RS\n\x00\x00")


def test_decode_rejects_utf16_without_bom() -> None:
    with pytest.raises(FormatError, match="NUL"):
        decode_upload("SuR,RS\n".encode("utf-16-le"))


def test_decode_rejects_utf32() -> None:
    with pytest.raises(FormatError, match="UTF-32"):
        decode_upload("SuR".encode("utf-32"))


# --- UPR Info CSV -----------------------------------------------------------------------------


@needs_shared
def test_upr_info_reads_the_legacy_database() -> None:
    text = decode_upload(LEGACY.read_bytes())
    results = list(read_upr_info_csv(text))
    _check_shape(results)
    assert len(results) == 38_298
    good = [r for r in results if r.record is not None]
    rejected = [r for r in results if r.error is not None]
    assert len(good) == 38_289
    assert len(rejected) == 9
    assert {r.error for r in rejected} == {"unknown recommending State '(Unknown)'"}
    assert len({r.line for r in results}) == len(results)
    assert results[0].line == 2

    first = good[0].record
    assert first is not None
    assert first["state_under_review"] == "AFG"
    assert first["recommending_states"] == ["ETH"]
    assert first["responses"] == [
        {
            "position": "supported",
            "declared_label": "Accepted",
            "source": "UPR Info database",
            "date": None,
            "note": None,
        }
    ]
    assert first["issues"] == ["General"]
    assert first["action_category"] == 4
    assert first["cycle"] == 2
    assert first["number"] is None
    positions = Counter(r.record["responses"][0]["position"] for r in good if r.record)
    assert set(positions) == {"supported", "noted"}


def test_upr_info_good_row_and_multiline_text() -> None:
    text = (
        UPR_INFO_HEADER
        + 'Cambodia,"Ratify  the\nOptional Protocol",France,Accepted,5,'
        + "International instruments; death penalty,2\n"
        + "\n"
        + "Cambodia,Consider ratifying ICRMW,Republic of Korea,Noted,3,,1\n"
    )
    results = list(read_upr_info_csv(text))
    _check_shape(results)
    assert [r.line for r in results] == [2, 5]
    first, second = (r.record for r in results)
    assert first is not None and second is not None
    assert first["text"] == "Ratify the Optional Protocol"
    assert first["issues"] == ["International instruments", "Death penalty"]
    assert first["state_under_review"] == "KHM"
    assert second["recommending_states"] == ["KOR"]
    assert second["responses"][0]["position"] == "noted"
    assert second["responses"][0]["declared_label"] == "Noted"
    assert second["issues"] == []
    assert second["cycle"] == 1


def test_upr_info_missing_columns_are_named() -> None:
    with pytest.raises(FormatError) as info:
        list(read_upr_info_csv("SuR,Recommendation,Response,Cycle\nCambodia,Ratify,Accepted,2\n"))
    message = str(info.value)
    assert message.startswith("missing required column: RS")
    assert "Response" not in message.split("(found")[0]


def test_upr_info_missing_several_columns() -> None:
    with pytest.raises(FormatError, match=r"missing required columns: RS, Response"):
        read_upr_info_csv("SuR,Recommendation,Cycle\nCambodia,Ratify,2\n")


def test_upr_info_not_csv() -> None:
    with pytest.raises(FormatError, match="missing required columns"):
        read_upr_info_csv('{"recommendations": []}\n')
    with pytest.raises(FormatError, match="empty"):
        read_upr_info_csv("  \n")


@pytest.mark.parametrize(
    ("row", "error"),
    [
        (
            "Cambodia,Ratify CAT,France,Accepted,9,,2",
            "action category '9' is not a number from 1 to 5",
        ),
        ("Cambodia,Ratify CAT,France,Accepted,5,Foo,2", "unknown issue 'Foo'"),
        ("Cambodia,Ratify CAT,Atlantis,Accepted,5,,2", "unknown recommending State 'Atlantis'"),
        ("Cambodia,Ratify CAT,(Unknown),Accepted,5,,2", "unknown recommending State '(Unknown)'"),
        ("Cambodia,Ratify CAT,,Accepted,5,,2", "missing recommending State"),
        ("Atlantis,Ratify CAT,France,Accepted,5,,2", "unknown State under review 'Atlantis'"),
        ("Cambodia,  ,France,Accepted,5,,2", "missing text"),
        ("Cambodia,Ratify CAT,France,Maybe,5,,2", "unknown response 'Maybe'"),
        ("Cambodia,Ratify CAT,France,Accepted,5,,", "missing cycle"),
        (
            "Cambodia,Ratify CAT,France,Accepted,5,,two",
            "cycle 'two' is not a positive whole number",
        ),
    ],
)
def test_upr_info_row_errors(row: str, error: str) -> None:
    results = list(read_upr_info_csv(UPR_INFO_HEADER + row + "\n"))
    assert results == [RowResult(2, None, error)]


def test_upr_info_reports_every_problem_of_a_row() -> None:
    (result,) = read_upr_info_csv(UPR_INFO_HEADER + "Cambodia,,Atlantis,Accepted,9,Foo,2\n")
    assert result.error == (
        "missing text; unknown recommending State 'Atlantis'; "
        "action category '9' is not a number from 1 to 5; unknown issue 'Foo'"
    )


def test_upr_info_semicolon_separated_and_several_states() -> None:
    text = (
        "SuR;Recommendation;RS;Response;Cycle\n"
        "Cambodia;Abolish the death penalty;Australia, Canada;Accepted;2\n"
    )
    (result,) = read_upr_info_csv(text)
    assert result.record is not None
    assert result.record["recommending_states"] == ["AUS", "CAN"]
    assert result.record["action_category"] is None


# --- Positions CSV ----------------------------------------------------------------------------


def test_positions_reads_the_demo_set() -> None:
    results = list(read_positions_csv(decode_upload(DEMO.read_bytes())))
    _check_shape(results)
    assert len(results) == 205
    assert all(r.error is None for r in results)
    records = [r.record for r in results if r.record is not None]
    assert [r.line for r in results] == list(range(2, 207))
    assert len({s for r in records for s in r["recommending_states"]}) == 72
    last = Counter(r["responses"][-1]["position"] for r in records)
    assert last == {"supported": 163, "noted": 42}
    first = Counter(r["responses"][0]["position"] for r in records)
    assert first == {"supported": 171, "pending": 34}

    by_number = {r["number"]: r for r in records}
    revised = {
        n
        for n, r in by_number.items()
        if [x["position"] for x in r["responses"]] == ["supported", "noted"]
    }
    assert revised == {"118.1", "118.2", "118.3", "118.4", "118.5", "118.22", "118.57", "118.161"}
    assert by_number["118.5"]["responses"][1]["declared_label"] == "rejected"
    assert by_number["118.5"]["responses"][1]["source"] == "Addendum / HRC adoption"
    assert by_number["118.17"]["responses"] == [
        {
            "position": "supported",
            "declared_label": None,
            "source": "Working Group report A/HRC/26/16",
            "date": date(2014, 1, 28),
            "note": None,
        }
    ]
    pending = by_number["119.1"]
    assert [x["position"] for x in pending["responses"]] == ["pending", "noted"]
    assert pending["responses"][1]["note"] == "pending at WG; noted in response (A/HRC/26/16/Add.1)"
    assert "118.09" in by_number["118.109"]["responses"][0]["note"]
    assert pending["paragraph"] == "119"
    assert pending["document"] == "A/HRC/26/16"
    assert pending["cycle"] == 2 and pending["session"] == 18
    assert pending["review_date"] == date(2014, 1, 28)
    assert pending["state_under_review"] == "KHM"
    assert by_number["118.1"]["action_category"] == 5
    assert by_number["118.1"]["issues"] == [
        "CP rights - general",
        "Death penalty",
        "International instruments",
    ]


POSITIONS_HEADER = (
    "sur_iso3,recommendation_id,text,recommending_state_iso3,wg_position,final_response\n"
)


def test_positions_validates_iso3() -> None:
    text = POSITIONS_HEADER + "KHM,118.1,Ratify CAT,ATL,supported,accepted\n"
    assert list(read_positions_csv(text)) == [
        RowResult(2, None, "unknown recommending State 'ATL'")
    ]


def test_positions_resolves_names_without_iso3_column() -> None:
    text = (
        "state_under_review,recommendation_id,text,recommending_state,wg_position,final_response\n"
        "Cambodia,118.1,Ratify CAT,Czech Republic,supported,accepted\n"
        "Cambodia,119.1,Ratify ICRMW,Atlantis,pending,noted\n"
    )
    good, bad = read_positions_csv(text)
    assert good.record is not None
    assert good.record["recommending_states"] == ["CZE"]
    assert good.record["paragraph"] == "118"
    assert [x["position"] for x in good.record["responses"]] == ["supported"]
    assert bad == RowResult(3, None, "unknown recommending State 'Atlantis'")


def test_positions_missing_columns() -> None:
    with pytest.raises(FormatError) as info:
        read_positions_csv("recommendation_id,text\n118.1,Ratify\n")
    message = str(info.value)
    assert "sur_iso3 or state_under_review" in message
    assert "recommending_state_iso3 or recommending_state" in message
    assert "wg_position" in message


# --- Working Group report text ----------------------------------------------------------------


def _read_cambodia_report() -> list[RowResult]:
    return list(
        read_report_text(
            CAMBODIA_REPORT.read_text(encoding="utf-8"),
            state_under_review="Cambodia",
            cycle=2,
            session=18,
            review_date=date(2014, 1, 28),
            document="A/HRC/26/16",
        )
    )


def test_cambodia_sample_is_up_to_date() -> None:
    spec = importlib.util.spec_from_file_location(
        "make_report", SAMPLES / "make_cambodia_report.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.build() == CAMBODIA_REPORT.read_text(encoding="utf-8")


def test_report_text_reads_the_cambodia_report() -> None:
    results = _read_cambodia_report()
    _check_shape(results)
    records = [r.record for r in results if r.record is not None]
    assert len(records) == 205
    positions = Counter(r["responses"][0]["position"] for r in records)
    assert positions == {"supported": 171, "pending": 34}

    expected = _demo_rows()
    assert [r["number"] for r in records] == [row["recommendation_id"] for row in expected]
    for record, row in zip(records, expected, strict=True):
        assert record["text"] == row["text"], row["recommendation_id"]
        assert record["recommending_states"] == [row["recommending_state_iso3"]]
        assert record["paragraph"] == row["paragraph"]
        position = "supported" if row["wg_position"] == "supported" else "pending"
        assert record["responses"] == [
            {
                "position": position,
                "declared_label": None,
                "source": "Working Group report A/HRC/26/16",
                "date": date(2014, 1, 28),
                "note": None,
            }
        ]
        assert record["state_under_review"] == "KHM"
        assert record["document"] == "A/HRC/26/16"
        assert (record["cycle"], record["session"]) == (2, 18)
        assert record["issues"] == [] and record["action_category"] is None

    # The report misprints 118.109 as "118.09"; the reader says so and keeps the record.
    errors = [r for r in results if r.error is not None]
    assert [r.error for r in errors] == ["number 118.09 read as 118.109"]


def test_report_text_lines_point_at_the_numbers() -> None:
    lines = CAMBODIA_REPORT.read_text(encoding="utf-8").split("\n")
    for result in _read_cambodia_report():
        printed = "118.09" if result.record is None else result.record["number"]
        if printed == "118.109":
            printed = "118.09"
        assert re.match(rf"{re.escape(printed)}\s", lines[result.line - 1])


def test_report_text_numbering_and_attributions() -> None:
    results = list(
        read_report_text(
            NUMBERING_REPORT.read_text(encoding="utf-8"),
            state_under_review="MWI",
            cycle=3,
            session=36,
            review_date=date(2020, 11, 4),
            document="A/HRC/99/10",
        )
    )
    _check_shape(results)
    got = [
        (r.line, r.error)
        if r.error
        else (
            r.line,
            r.record["number"],
            r.record["text"],
            r.record["recommending_states"],
            r.record["responses"][0]["position"],
        )
        for r in results
        if r.record is not None or r.error is not None
    ]
    ccpr = "Ratify the International Covenant on Civil and Political Rights (ICCPR) and its"
    assert got == [
        (9, "120.1", f"{ccpr} Optional Protocols", ["AUS", "CAN"], "supported"),
        (11, "120.2", "Establish a national preventive mechanism", ["CHL", "PER"], "supported"),
        (12, "120.3", "Strengthen the protection of human rights defenders", ["GBR"], "supported"),
        (14, "120.4", "Abolish the death penalty", ["VEN", "BOL"], "supported"),
        (
            16,
            "120.5",
            "Adopt a law on non-discrimination and prosecute all cases of ill-treatment",
            ["TTO"],
            "supported",
        ),
        (18, "numbering skips from 120.5 to 120.7"),
        (18, "120.7", "Guarantee freedom of the press", ["CIV"], "supported"),
        (
            21,
            "120.8",
            "Consider ratifying the Rome Statute of the International Criminal Court",
            ["DEU"],
            "supported",
        ),
        (23, "120.9", "Combat trafficking in persons.", ["FRA"], "supported"),
        (24, "number 120.9 repeats line 23"),
        (25, "120.10: no recommending State in parentheses at the end"),
        (
            28,
            "121.1",
            "Seek technical assistance from OHCHR to draft its reports to the treaty bodies",
            ["VAT"],
            "pending",
        ),
        (30, "121.2", "Lift the ban on public gatherings", ["CHE"], "pending"),
        (
            32,
            "122.1",
            "Decriminalize same-sex relations between consenting adults",
            ["NLD"],
            "noted",
        ),
        (33, "122.2: unknown recommending State 'Atlantis'"),
        (
            34,
            "122.3",
            "Ratify the Convention on the Rights of Persons with Disabilities",
            ["PRK"],
            "noted",
        ),
    ]


def _report(text: str, **kwargs: Any) -> list[RowResult]:
    args: dict[str, Any] = {
        "state_under_review": "KHM",
        "cycle": 2,
        "session": None,
        "review_date": None,
        "document": None,
    }
    args.update(kwargs)
    return list(read_report_text(text, **args))


def test_report_text_without_recommendations_is_unusable() -> None:
    with pytest.raises(FormatError, match="no recommendations found"):
        _report("1. Introduction\nThe Working Group held its session.\n")


def test_report_text_unknown_state_under_review() -> None:
    with pytest.raises(UnknownCountry, match="Atlantis"):
        _report("", state_under_review="Atlantis")


def test_report_text_ignores_text_outside_sections_and_handles_crlf() -> None:
    text = (
        "45. France welcomed the progress made. It noted recommendations of the first cycle.\r\n"
        "45.1 This is not a recommendation (France);\r\n"
        "II. Conclusions and/or recommendations\r\n"
        "90.  The following recommendations enjoy the support of Cambodia:\r\n"
        "90.1   Ratify CAT (Ireland);\r\n"
        "90.2\r\n"
        "Adopt a law on access to information (New Zealand).\r\n"
        "Annex\r\n"
        "The delegation (France);\r\n"
    )
    results = _report(text)
    _check_shape(results)
    assert [(r.line, r.record["number"], r.record["text"]) for r in results if r.record] == [
        (5, "90.1", "Ratify CAT"),
        (6, "90.2", "Adopt a law on access to information"),
    ]
    assert all(r.record for r in results)
    assert results[0].record is not None
    assert results[0].record["responses"][0]["source"] == "Working Group report"


def test_report_text_section_of_unknown_position() -> None:
    text = (
        "90. The following recommendations were made during the dialogue:\n"
        "90.1 Ratify CAT (Ireland);\n"
        "91. The recommendations below did not enjoy the support of Cambodia:\n"
        "91.1 Abolish the death penalty (Chile) (Peru).\n"
    )
    results = _report(text)
    assert [(r.line, r.error) for r in results if r.error] == [
        (1, "paragraph 90: cannot tell whether its recommendations are supported, noted or pending")
    ]
    (record,) = [r.record for r in results if r.record]
    assert record["number"] == "91.1"
    assert record["responses"][0]["position"] == "noted"
    assert record["recommending_states"] == ["CHL", "PER"]
