"""Every kind renders in every language for e-mail and SMS; SMS are sized and shortened right."""

from __future__ import annotations

import json
import random
import re
import shutil
import unicodedata
from pathlib import Path

import pytest

from services.notifications import rendering
from services.notifications.rendering import (
    KHMER_COENG,
    KHMER_SIGNS,
    KINDS,
    fit_sms,
    languages,
    missing_templates,
    render,
    sms_encoding,
    sms_segments,
    status_label,
)

KHMER = re.compile(r"[\u1780-\u17FF]")
DEADLINE = {
    "id": "d1",
    "kind": "report",
    "title": "Report on the access to information law",
    "state_under_review": "KHM",
    "due_on": "2017-01-31",
    "responsible_body": "Ministry of Information",
}
LINKS = {
    "recommendation": "http://127.0.0.1:8000/recommendations/KHM-2-118.17",
    "unsubscribe": "http://127.0.0.1:8003/v1/unsubscribe?token=u.1-x",
    "preferences": "http://127.0.0.1:8003/v1/preferences?token=p.2-y",
}
RECOMMENDATION = {
    "id": "KHM-2-118.17",
    "number": "118.17",
    "text": "Establish a law on freedom of information <script>alert(1)</script>",
    "state_under_review": "KHM",
    "recommending_states": [{"iso3": "BEL", "name": "Belgium"}],
    "issues": ["Freedom of opinion and expression"],
    "responsible_bodies": [{"name": "Ministry of Information", "role": "lead"}],
    "response": "supported",
}
# The payload of each kind (the event's data minus "recommendation"), as the service builds it.
DATA: dict[str, dict] = {
    "recommendation.created": {},
    "recommendation.updated": {"changed_fields": ["text", "issues"]},
    "recommendation.response_changed": {"previous": {"position": "pending"}},
    "recommendation.assigned": {},
    "recommendation.prioritised": {},
    "assessment.recorded": {
        "assessment": {
            "id": "a1",
            "organisation": "ADHOC",
            "assessor_type": "ngo",
            "status": "in_progress",
            "dimension": "law",
            "assessed_on": "2016-06-30",
            "summary": "Draft law discussed",
        },
    },
    "status.changed": {
        "previous_status": "not_started",
        "status": "in_progress",
        "organisation": "ADHOC",
        "assessor_type": "ngo",
        "reason": "Draft law discussed",
        "assessment_id": "a1",
    },
    "evidence.added": {
        "evidence": {
            "id": "e1",
            "kind": "law_or_decree",
            "title": "Draft law published",
            "url": "https://example.org/draft",
            "visibility": "public",
            "verification_status": "unverified",
        },
    },
    "evidence.verified": {
        "evidence": {
            "id": "e1",
            "kind": "law_or_decree",
            "title": "Draft law published",
            "visibility": "public",
            "verification_status": "verified",
        },
        "verification": {"status": "verified", "by": "OHCHR"},
    },
    "indicator.measured": {
        "indicator": {
            "id": "i1",
            "name": "Requests answered",
            "kind": "quantitative",
            "unit": "%",
            "target_value": 80.0,
            "target_date": "2018-12-31",
        },
        "measurement": {"id": "m1", "value": 35.0, "measured_on": "2016-06-01"},
    },
    "deadline.set": {"deadline": DEADLINE},
    "deadline.met": {"deadline": {**DEADLINE, "met_on": "2017-01-20"}},
    "reminder": {"deadline": DEADLINE, "days_left": 7},
    "overdue": {"deadline": DEADLINE, "days_overdue": 3},
    "escalation": {"deadline": DEADLINE, "days_overdue": 21, "level": 2},
    "digest": {
        "period": "daily",
        "items": [
            {
                "kind": "status.changed",
                "number": "118.17",
                "status": "in_progress",
                "summary": "118.17 status.changed in_progress",
                "link": LINKS["recommendation"],
            },
            {"kind": "deadline.set", "summary": "deadline set"},
            {"kind": "evidence.added", "number": "118.18", "summary": "118.18 evidence.added"},
        ],
    },
    "confirm": {"code": "123456", "confirm_link": "http://127.0.0.1:8003/v1/confirm?token=c.3-z"},
    "welcome": {},
}
NO_RECOMMENDATION = {"digest", "confirm", "welcome"}


def context(kind: str, **changes: object) -> dict:
    """The context the dispatcher hands to templates for this kind."""
    value = {
        "recipient": {"name": "Embassy of Belgium", "language": "km"},
        "event": {"id": "ev1", "type": f"upr.x.{kind}", "time": "2016-07-01T00:00:00+00:00"},
        "recommendation": None if kind in NO_RECOMMENDATION else dict(RECOMMENDATION),
        "data": DATA[kind],
        "links": dict(LINKS),
    }
    value.update(changes)
    return value


def test_every_kind_has_sample_data() -> None:
    assert set(DATA) == set(KINDS) and len(KINDS) == 18


def test_english_and_khmer_are_shipped_complete() -> None:
    assert {"en", "km"} <= set(languages())
    for language in languages():
        assert missing_templates(language) == [], language


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("language", ["en", "km"])
@pytest.mark.parametrize("channel", ["email", "sms"])
def test_every_kind_renders(kind: str, language: str, channel: str) -> None:
    rendered = render(kind, channel, language, context(kind))  # type: ignore[arg-type]
    assert rendered.subject and rendered.text.strip()
    for produced in (rendered.subject, rendered.text, rendered.html or ""):
        assert "{{" not in produced and "{%" not in produced
        assert "None" not in produced and "Undefined" not in produced
    if channel == "sms":
        assert rendered.html is None and "\n" not in rendered.text
        assert sms_segments(rendered.text) <= 2, rendered.text  # short; fit_sms does the rest
    else:
        assert "\n" not in rendered.subject
        assert LINKS["unsubscribe"] in rendered.text and LINKS["preferences"] in rendered.text
        html = rendered.html or ""
        assert html.startswith("<!DOCTYPE html>") and f'<html lang="{language}"' in html
        assert f'href="{LINKS["unsubscribe"]}"' in html and f'href="{LINKS["preferences"]}"' in html
        assert "<script>" not in html
    if language == "km":
        assert KHMER.search(rendered.text)
        if channel == "email":
            assert KHMER.search(rendered.subject) and KHMER.search(rendered.html or "")


def test_empty_context_does_not_break_any_template() -> None:
    for language in ("en", "km"):
        for kind in KINDS:
            for channel in ("email", "sms"):
                for given in ({}, {"recommendation": None, "data": None, "links": None}):
                    rendered = render(kind, channel, language, given)  # type: ignore[arg-type]
                    assert "None" not in rendered.text and "Undefined" not in rendered.text


def test_html_escapes_what_people_typed() -> None:
    html = render("status.changed", "email", "en", context("status.changed")).html or ""
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    hostile = context(
        "evidence.added",
        data={
            "evidence": {"title": "<b>x</b>", "url": "javascript:alert(1)", "visibility": "public"}
        },
    )
    rendered = render("evidence.added", "email", "en", hostile)
    assert "javascript:" not in (rendered.html or "") and "javascript:" not in rendered.text
    assert "&lt;b&gt;x&lt;/b&gt;" in (rendered.html or "")
    # Plain text is not HTML: it carries the words as typed.
    assert (
        "<script>alert(1)</script>"
        in render("status.changed", "email", "en", context("status.changed")).text
    )


def test_restricted_evidence_links_stay_out() -> None:
    data = {"evidence": {"title": "Internal memo", "url": "https://intranet.example/memo",
                         "visibility": "restricted"}}  # fmt: skip
    rendered = render("evidence.added", "email", "en", context("evidence.added", data=data))
    assert "intranet.example" not in rendered.text and "intranet.example" not in (
        rendered.html or ""
    )


def test_what_changed_is_said_in_the_readers_words() -> None:
    english = render("status.changed", "email", "en", context("status.changed"))
    assert "118.17" in english.subject and "in progress" in english.subject
    assert "not started" in english.text and "ADHOC" in english.text
    khmer = render("status.changed", "sms", "km", context("status.changed"))
    assert "118.17" in khmer.text and "កំពុងអនុវត្ត" in khmer.text
    reminder = render("reminder", "email", "en", context("reminder"))
    assert "7 days left" in reminder.subject
    one_day = render(
        "reminder", "email", "en", context("reminder", data={**DATA["reminder"], "days_left": 1})
    )
    assert "1 day left" in one_day.subject
    assert "នៅសល់ 7 ថ្ងៃ" in render("reminder", "email", "km", context("reminder")).subject
    # Dates are written the reader's way (the context has due_on 2017-01-31).
    assert "31 January 2017" in render("reminder", "email", "en", context("reminder")).text
    assert "31 មករា 2017" in render("reminder", "email", "km", context("reminder")).text
    assert "31 មករា 2017" in render("reminder", "sms", "km", context("reminder")).text
    escalation = render("escalation", "email", "en", context("escalation"))
    assert "level 2" in escalation.subject and "coordinator" in escalation.text
    head = render(
        "escalation", "email", "en", context("escalation", data={**DATA["escalation"], "level": 1})
    )
    assert "head of Ministry of Information" in head.text
    digest = render("digest", "sms", "en", context("digest"))
    assert "3 updates" in digest.text and "118.17" in digest.text
    confirm = render("confirm", "email", "km", context("confirm"))
    assert "123456" in confirm.text and DATA["confirm"]["confirm_link"] in confirm.text
    assert "123456" in render("confirm", "sms", "km", context("confirm")).text
    response = render(
        "recommendation.response_changed", "email", "km", context("recommendation.response_changed")
    )
    assert "គាំទ្រ" in response.subject and "កំពុងរង់ចាំ" in response.text


def test_catalog_shapes_are_understood() -> None:
    # Catalog snapshots carry the State as {iso3, name} and the response as an object.
    rec = {**RECOMMENDATION, "state_under_review": {"iso3": "KHM", "name": "Cambodia"},
           "response": {"position": "supported_in_part", "note": "Partly"}}  # fmt: skip
    rendered = render(
        "recommendation.response_changed", "email", "en",
        context("recommendation.response_changed", recommendation=rec),
    )  # fmt: skip
    assert "Cambodia" in rendered.text and "supported in part" in rendered.subject
    assert "Partly" in rendered.text
    # In Khmer, the States are named in Khmer; the bodies keep the names they were given.
    rec["responsible_bodies"] = [{"name": "Ministry of Information", "role": "lead"}]
    khmer = render(
        "recommendation.response_changed", "email", "km",
        context("recommendation.response_changed", recommendation=rec),
    )  # fmt: skip
    assert "កម្ពុជា" in khmer.text and "Cambodia" not in khmer.text
    assert "បែល\u200bហ្ស៊ិក" in (khmer.html or "")  # recommended by
    assigned = render(
        "recommendation.assigned", "email", "km",
        context("recommendation.assigned", recommendation=rec),
    )  # fmt: skip
    assert "Ministry of Information" in assigned.text


def test_status_labels() -> None:
    assert status_label("fully_implemented", "km") == "បានអនុវត្តពេញលេញ"
    assert status_label("supported_in_part", "en") == "supported in part"
    assert status_label("fully_implemented", "xx") == "fully implemented"
    assert status_label("something_new", "km") == "something new"
    statuses = (
        "not_started in_progress partially_implemented fully_implemented regressed no_data "
        "supported supported_in_part noted pending"
    ).split()
    for status in statuses:
        assert KHMER.search(status_label(status, "km")), status
        assert "_" not in status_label(status, "en")


def test_unknown_language_is_english_and_unknown_kind_is_a_key_error() -> None:
    french = render("status.changed", "email", "fr", context("status.changed"))
    assert (
        french.subject == render("status.changed", "email", "en", context("status.changed")).subject
    )
    assert 'lang="en"' in (french.html or "")
    with pytest.raises(KeyError, match=r"no\.such\.kind"):
        render("no.such.kind", "email", "en", context("welcome"))
    with pytest.raises(KeyError):
        render("../../etc/passwd", "sms", "en", context("welcome"))


def test_a_partial_language_borrows_english_templates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "templates"
    shutil.copytree(rendering.TEMPLATES, root)
    (root / "xx").mkdir()
    (root / "xx" / "labels.json").write_text('{"statuses": {"in_progress": "EN COURS"}}')
    (root / "xx" / "status.changed.sms.j2").write_text("XX {{ num }} {{ label(data.status) }}")
    monkeypatch.setattr(rendering, "TEMPLATES", root)
    assert "xx" in languages() and "xx/status.changed.email.txt.j2" in missing_templates("xx")
    assert (
        render("status.changed", "sms", "xx", context("status.changed")).text
        == "XX 118.17 EN COURS"
    )
    email = render("status.changed", "email", "xx", context("status.changed"))
    assert "Status of 118.17" in email.subject and "in progress" in email.subject


def test_webhook_rendering_is_json_without_personal_links() -> None:
    rendered = render("confirm", "webhook", "km", context("confirm"))
    payload = json.loads(rendered.text)
    assert rendered.subject == "confirm" and rendered.html is None
    assert "recipient" not in payload and "code" not in payload["data"]
    status = json.loads(render("status.changed", "webhook", "en", context("status.changed")).text)
    assert status["links"] == {"recommendation": LINKS["recommendation"]}
    assert (
        status["data"]["status"] == "in_progress" and status["recommendation"]["number"] == "118.17"
    )


# --- SMS sizing --------------------------------------------------------------------------


def test_encoding_and_segments() -> None:
    assert sms_encoding("Status of 118.17: in progress") == "GSM-7"
    assert sms_encoding("price 5€ [ok]") == "GSM-7"
    assert sms_encoding("សួស្តី") == "UCS-2" and sms_encoding("“quoted”") == "UCS-2"
    assert sms_segments("a" * 160) == 1 and sms_segments("a" * 161) == 2
    assert sms_segments("a" * 306) == 2 and sms_segments("a" * 307) == 3
    assert sms_segments("€") == 1 and sms_segments("€" * 80) == 1 and sms_segments("€" * 81) == 2
    assert sms_segments("a" * 159 + "€") == 2  # € counts two
    assert sms_segments("ក" * 70) == 1 and sms_segments("ក" * 71) == 2
    assert sms_segments("ក" * 134) == 2 and sms_segments("ក" * 135) == 3
    assert sms_segments("😀" * 35) == 1 and sms_segments("😀" * 36) == 2  # two UTF-16 units each


def _khmer_cut_is_clean(original: str, body: str) -> bool:
    if not original.startswith(body) or len(body) == len(original):
        return original.startswith(body)
    following = original[len(body)]
    return (
        not unicodedata.category(following).startswith("M")
        and ord(following) not in KHMER_SIGNS
        and not body.endswith(KHMER_COENG)
    )


def test_fit_sms_keeps_short_text_and_the_link() -> None:
    link = "https://upr.example/r/KHM-2-118.17"
    assert fit_sms("Short", link, 1) == f"Short {link}"
    assert fit_sms("Short", None, 1) == "Short"


def test_fit_sms_cuts_english_at_a_word_and_stays_gsm() -> None:
    link = "https://upr.example/r/KHM-2-118.17"
    text = "Status of 118.17 changed " + "because of many long words " * 30
    for limit in (1, 2, 3):
        fitted = fit_sms(text, link, limit)
        assert sms_segments(fitted) <= limit and fitted.endswith(" " + link)
        assert sms_encoding(fitted) == "GSM-7"  # "..." not "…", which would force UCS-2
        body = fitted.removesuffix(" " + link).removesuffix("...")
        assert text.startswith(body) and text[len(body)] == " "
        assert sms_segments(fitted) == limit  # and uses what it may


def test_fit_sms_never_splits_a_khmer_cluster() -> None:
    khmer = "ស្ថានភាពនៃអនុសាសន៍បានផ្លាស់ប្តូរពីមិនទាន់ចាប់ផ្តើមទៅកំពុងអនុវត្ត" * 6
    link = "https://x.example/r/118.17"
    for limit in (1, 2, 3):
        for given in (link, None):
            fitted = fit_sms(khmer, given, limit)
            assert sms_segments(fitted) <= limit
            if given:
                assert fitted.endswith(" " + given)
            body = fitted.removesuffix(" " + given if given else "").removesuffix("…")
            assert body and _khmer_cut_is_clean(khmer, body), body[-3:]


def test_fit_sms_on_random_mixtures() -> None:
    rng = random.Random(20160701)
    pieces = ["ស្ថានភាព", "អនុសាសន៍", "ផ្លាស់ប្តូរ", "ស្ត្រី", "118.17", "status", "changed",
              "€", "[x]", "។", " ", " ", "\u200b", "ក្សេត្រ", "😀"]  # fmt: skip
    for _ in range(300):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 120)))
        limit = rng.randint(1, 4)
        link = rng.choice([None, "https://u.example/r/1", "https://u.example/r/" + "x" * 40])
        fitted = fit_sms(text, link, limit)
        assert sms_segments(fitted) <= limit, (text, link, limit)
        if link and fitted.endswith(link):
            fitted = fitted.removesuffix(link).rstrip()
        body = fitted.removesuffix("…").removesuffix("...")
        assert _khmer_cut_is_clean(text.strip(), body), (text, body)


def test_fit_sms_drops_a_link_that_can_never_fit() -> None:
    huge = "https://u.example/" + "x" * 400
    fitted = fit_sms("Status of 118.17 changed", huge, 1)
    assert fitted == "Status of 118.17 changed"


@pytest.mark.parametrize("language", ["en", "km"])
def test_an_event_rendered_once_reads_as_if_rendered_for_each_reader(language: str) -> None:
    renderer = rendering.EventEmailRenderer()
    readers = [
        ({"name": "Ministry <of> Justice & Co", "language": language}, "u1", "p1"),
        ({"name": "", "language": language}, "u2", "p2"),
        ({"name": "Embassy of Belgium", "language": language}, "u3", "p3"),
    ]
    for recipient, unsubscribe, preferences in readers:
        links = {**LINKS, "unsubscribe": f"https://u/{unsubscribe}?a=1&b=2"}
        links["preferences"] = f"https://p/{preferences}"
        given = context("status.changed", recipient=recipient, links=links)
        once = renderer.render("ev1", "status.changed", language, given)
        assert once == render("status.changed", "email", language, given)
    # Three readers, two shapes (named and anonymous): the templates ran twice.
    assert len(renderer._cache) == 2
    # Kinds whose context differs per reader (digests, reminders) are never shared.
    digest = context("digest")
    assert renderer.render("ev1", "digest", language, digest) == render(
        "digest", "email", language, digest
    )
    assert len(renderer._cache) == 2
