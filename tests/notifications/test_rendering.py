"""Every kind renders in every language and channel; SMS fits its segments."""

from __future__ import annotations

import re

import pytest

from services.notifications.rendering import (
    fit_sms,
    languages,
    render,
    sms_encoding,
    sms_segments,
    status_label,
)

KHMER = re.compile(r"[\u1780-\u17FF]")
KINDS = [
    "recommendation.created",
    "recommendation.updated",
    "recommendation.response_changed",
    "recommendation.assigned",
    "recommendation.prioritised",
    "assessment.recorded",
    "status.changed",
    "evidence.added",
    "evidence.verified",
    "indicator.measured",
    "deadline.set",
    "deadline.met",
    "reminder",
    "overdue",
    "escalation",
    "digest",
    "confirm",
    "welcome",
]
DEADLINE = {"id": "d1", "title": "Report on the access to information law", "due_on": "2017-01-31",
            "responsible_body": "Ministry of Information"}  # fmt: skip
CONTEXT = {
    "recipient": {"name": "Embassy of Belgium", "language": "km"},
    "event": {"id": "e1", "type": "x", "time": "2016-07-01T00:00:00Z"},
    "recommendation": {
        "id": "KHM-2-118.17",
        "number": "118.17",
        "text": "Establish a law on freedom of information <script>alert(1)</script>",
        "recommending_states": [{"iso3": "BEL", "name": "Belgium"}],
        "issues": ["Freedom of opinion and expression"],
        "responsible_bodies": [{"name": "Ministry of Information", "role": "lead"}],
        "response": "supported",
    },
    "data": {
        "previous_status": "not_started",
        "status": "in_progress",
        "organisation": "ADHOC",
        "reason": "Draft law discussed",
        "previous": {"position": "pending"},
        "changed_fields": ["text"],
        "assessment": {"organisation": "ADHOC", "status": "in_progress"},
        "evidence": {"title": "Draft law published"},
        "verification": {"status": "verified"},
        "indicator": {"name": "Requests answered", "unit": "%"},
        "measurement": {"value": 35, "text_value": None},
        "deadline": DEADLINE,
        "days_left": 7,
        "days_overdue": 3,
        "level": 1,
        "period": "daily",
        "items": [{"kind": "status.changed", "summary": "118.17 status.changed in_progress"}],
        "code": "123456",
        "confirm_link": "http://127.0.0.1:8003/v1/confirm?token=abc",
    },
    "links": {
        "recommendation": "http://127.0.0.1:8000/recommendations/KHM-2-118.17",
        "unsubscribe": "http://127.0.0.1:8003/v1/unsubscribe?token=u",
        "preferences": "http://127.0.0.1:8003/v1/preferences?token=p",
    },
}


def test_english_and_khmer_are_shipped() -> None:
    assert {"en", "km"} <= set(languages())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("language", ["en", "km"])
def test_every_kind_renders(kind: str, language: str) -> None:
    email = render(kind, "email", language, CONTEXT)
    sms = render(kind, "sms", language, CONTEXT)
    assert email.subject and email.text and email.html and sms.text
    assert "{{" not in email.text and "{%" not in email.text
    assert CONTEXT["links"]["unsubscribe"] in email.text
    assert "<script>" not in email.html
    if language == "km":
        assert KHMER.search(email.subject) and KHMER.search(sms.text)
        assert 'lang="km"' in email.html


def test_status_change_says_what_changed() -> None:
    english = render("status.changed", "email", "en", CONTEXT)
    assert "118.17" in english.subject and "in progress" in english.subject
    khmer = render("status.changed", "sms", "km", CONTEXT)
    assert "កំពុងអនុវត្ត" in khmer.text
    assert status_label("fully_implemented", "km") == "បានអនុវត្តពេញលេញ"
    assert status_label("fully_implemented", "xx") == "fully implemented"


def test_unknown_language_falls_back_to_english() -> None:
    assert "Status of 118.17" in render("status.changed", "email", "fr", CONTEXT).subject
    with pytest.raises(KeyError):
        render("no.such.kind", "email", "en", CONTEXT)


def test_segments() -> None:
    assert sms_encoding("hello") == "GSM-7" and sms_encoding("សួស្តី") == "UCS-2"
    assert sms_segments("a" * 160) == 1 and sms_segments("a" * 161) == 2
    assert sms_segments("a" * 306) == 2 and sms_segments("a" * 307) == 3
    assert sms_segments("€" * 80) == 1 and sms_segments("€" * 81) == 2
    assert sms_segments("ក" * 70) == 1 and sms_segments("ក" * 71) == 2


def test_fit_sms_keeps_the_link_and_whole_words() -> None:
    link = "https://upr.example/r/KHM-2-118.17"
    text = "Status of 118.17 changed " + "because of many long words " * 30
    fitted = fit_sms(text, link, 2)
    assert sms_segments(fitted) <= 2 and fitted.endswith(link)
    body = fitted[: -len(link)].rstrip().removesuffix("…")
    assert text.startswith(body) and text[len(body)] == " "
    short = fit_sms("Short", link, 1)
    assert short == f"Short {link}"


def test_fit_sms_never_splits_a_khmer_cluster() -> None:
    khmer = "ស្ថានភាពនៃអនុសាសន៍បានផ្លាស់ប្តូរ" * 10
    fitted = fit_sms(khmer, "https://x.example/1", 1)
    assert sms_segments(fitted) <= 1
    body = fitted.split("…")[0]
    following = khmer[len(body)]
    import unicodedata

    assert not unicodedata.category(following).startswith("M")
    assert not body.endswith("\u17d2")
