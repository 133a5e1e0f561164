"""Issues, action categories and response positions."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from services.catalog.vocabulary import (
    ACTION_CATEGORIES,
    ISSUES,
    RESPONSE_POSITIONS,
    UnknownIssue,
    normalise_issue,
    normalise_position,
    suggest_action_category,
)

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"
LEGACY = SHARED_DATA / "upr_info_legacy_2014.csv"
DEMO = REPO / "services" / "catalog" / "demo" / "cambodia_upr2_2014_recommendations.csv"


def test_issues_are_the_54_upr_info_labels() -> None:
    assert len(ISSUES) == 54
    assert len(set(ISSUES)) == 54
    assert "Women's rights" in ISSUES
    assert "ESC rights -general" in ISSUES


@pytest.mark.skipif(not SHARED_DATA.exists(), reason=f"reference data not found at {SHARED_DATA}")
def test_shipped_issue_list_matches_the_reference() -> None:
    reference = json.loads((SHARED_DATA / "upr_info_issues.json").read_text(encoding="utf-8"))
    assert list(ISSUES) == reference


@pytest.mark.parametrize(
    ("label", "canonical"),
    [
        ("Women's rights", "Women's rights"),
        ("  women's   RIGHTS ", "Women's rights"),
        ("women\u2019s rights", "Women's rights"),
        ("ESC rights - general", "ESC rights -general"),
        ("esc rights-general", "ESC rights -general"),
        ("nhri", "NHRI"),
        ("Torture and other CID treatment", "Torture and other CID treatment"),
        ("HIV - Aids", "HIV - Aids"),
        ("hiv-aids", "HIV - Aids"),
    ],
)
def test_normalise_issue(label: str, canonical: str) -> None:
    assert normalise_issue(label) == canonical


@pytest.mark.parametrize("label", ["Foo", "", "Women"])
def test_unknown_issue_raises(label: str) -> None:
    with pytest.raises(UnknownIssue) as info:
        normalise_issue(label)
    assert str(info.value) == f"unknown issue {label!r}"
    assert isinstance(info.value, ValueError)


def test_action_categories() -> None:
    assert sorted(ACTION_CATEGORIES) == [1, 2, 3, 4, 5]
    assert ACTION_CATEGORIES[5] == "Specific action"
    assert ACTION_CATEGORIES[1] == "Minimal action"


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("Seek technical assistance from OHCHR", 1),
        ("Request technical assistance to prepare its reports", 1),
        ("Share its best practices with other countries", 1),
        ("Continue to strengthen its national human rights institution", 2),
        ("Continue its efforts to reduce poverty", 2),
        ("To continue its efforts to combat trafficking", 2),
        ("Maintain its cooperation with the special procedures", 2),
        ("Consider ratifying the Rome Statute", 3),
        ("Consider the possibility of acceding to CAT", 3),
        ("Review the Penal Code to bring it into line with ICCPR", 3),
        ("Give due consideration to the ratification of ICRMW", 3),
        ("Ensure the independence of the judiciary", 4),
        ("Take measures to combat violence against women", 4),
        ("Strengthen its efforts to combat corruption", 4),
        ("Promote gender equality", 4),
        ("Combat discrimination against minorities", 4),
        ("Further strengthen the protection of children", 4),
        ("Adopt effective measures to protect journalists", 4),
        ("Ratify the Optional Protocol to CAT", 5),
        ("Establish a national human rights institution", 5),
        ("Adopt a law on access to information", 5),
        ("Amend the Criminal Code", 5),
        ("Abolish the death penalty", 5),
        ("Implement the recommendations of the Special Rapporteur", 5),
        ("Enact legislation against domestic violence", 5),
        ("Fully implement the national action plan", 5),
        ("In line with its Constitution, ratify ICCPR", 5),
        ("Apply the law on domestic violence", 4),
    ],
)
def test_suggest_action_category(text: str, category: int) -> None:
    assert suggest_action_category(text) == category


def test_suggest_action_category_without_words() -> None:
    assert suggest_action_category("") is None
    assert suggest_action_category(" ... ") is None


def _agreement(rows: list[tuple[str, str]]) -> float:
    hits = sum(suggest_action_category(text) == int(category) for text, category in rows)
    return hits / len(rows)


def test_suggestion_agrees_with_upr_info_on_the_demo_set() -> None:
    with DEMO.open(encoding="utf-8", newline="") as f:
        rows = [(r["text"], r["upr_info_action_category"]) for r in csv.DictReader(f)]
    assert _agreement(rows) >= 0.80


@pytest.mark.skipif(not LEGACY.exists(), reason=f"reference data not found at {SHARED_DATA}")
def test_suggestion_agrees_with_upr_info_on_the_legacy_database() -> None:
    with LEGACY.open(encoding="utf-8", newline="") as f:
        rows = [(r["Recommendation"], r["ActionCategory"]) for r in csv.DictReader(f)]
    assert len(rows) == 38_298
    assert _agreement(rows) >= 0.85  # 0.874 when written


@pytest.mark.parametrize(
    ("label", "position"),
    [
        ("Accepted", "supported"),
        ("accepted", "supported"),
        ("supported", "supported"),
        ("Supported", "supported"),
        ("supported in part", "supported_in_part"),
        ("partially supported", "supported_in_part"),
        ("Partially accepted", "supported_in_part"),
        ("supported_in_part", "supported_in_part"),
        ("noted", "noted"),
        ("Noted", "noted"),
        ("rejected", "noted"),
        ("not supported", "noted"),
        ("Not Supported", "noted"),
        ("pending", "pending"),
        ("will be examined", "pending"),
        ("to be examined", "pending"),
        ("pending (to be examined)", "pending"),
        ("  Accepted ", "supported"),
        ("already implemented", "supported"),
    ],
)
def test_normalise_position(label: str, position: str) -> None:
    assert normalise_position(label) == position
    assert position in RESPONSE_POSITIONS


@pytest.mark.parametrize("label", ["maybe", "", "abstained"])
def test_unknown_position_raises(label: str) -> None:
    with pytest.raises(ValueError, match=f"unknown response position {label!r}"):
        normalise_position(label)
