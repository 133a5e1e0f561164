"""Messages in the reader's language: Jinja2 templates per kind, channel and part; SMS sizing.

templates/<language>/ holds labels.json (the words the code and layouts need) and one file per
(kind, channel, part): <kind>.email.subject.j2, <kind>.email.txt.j2, <kind>.email.html.j2 and
<kind>.sms.j2. The shared layouts (_layout.txt.j2, _layout.html.j2) sit in templates/ and take
their words from labels.json, so adding a language is adding a folder.
"""

from __future__ import annotations

import datetime as dt
import gettext
import json
import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import pycountry
from babel import UnknownLocaleError
from babel.dates import format_date
from jinja2 import (
    ChainableUndefined,
    Environment,
    FileSystemLoader,
    TemplateNotFound,
    pass_context,
    select_autoescape,
)
from jinja2.runtime import Context
from markupsafe import escape

TEMPLATES = Path(__file__).parent / "templates"
DEFAULT_LANGUAGE = "en"
Channel = Literal["email", "sms", "webhook"]
EVENT_KINDS: tuple[str, ...] = (
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
)
NOTIFICATION_KINDS: tuple[str, ...] = (
    "reminder",
    "overdue",
    "escalation",
    "digest",
    "confirm",
    "welcome",
)
KINDS: tuple[str, ...] = EVENT_KINDS + NOTIFICATION_KINDS
# The files every kind has in every language: (channel, part) -> file name suffix.
PARTS: dict[tuple[str, str], str] = {
    ("email", "subject"): "email.subject.j2",
    ("email", "text"): "email.txt.j2",
    ("email", "html"): "email.html.j2",
    ("sms", "text"): "sms.j2",
}
# Signed links are capabilities of one reader; they stay out of machine payloads.
PRIVATE_LINKS = frozenset({"unsubscribe", "preferences", "confirm"})
PRIVATE_DATA = frozenset({"code", "confirm_link"})
_KIND = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*")

# GSM 03.38: the basic table, and the extension table whose characters take two septets.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = frozenset("\f^{}\\[~]|€")
KHMER_SIGNS = range(0x17B6, 0x17D4)  # dependent vowels and signs U+17B6..U+17D3
KHMER_COENG = "\u17d2"  # joins the next consonant below the previous one
JOINERS = frozenset("\u200c\u200d\u034f")  # ZWNJ, ZWJ, combining grapheme joiner
WORD_BREAKS = frozenset(" \t\n\u200b")  # spaces and the zero-width space Khmer may use
SENTENCE_ENDS = frozenset("\u17d4\u17d5")  # Khmer khan and bariyoosan: a word ends after them


@dataclass
class Rendered:
    subject: str
    text: str
    html: str | None


# --- languages and labels ----------------------------------------------------------------


def languages() -> list[str]:
    """The languages shipped: every folder of templates/ (adding a folder adds a language)."""
    return _languages(TEMPLATES)


@cache
def _languages(folder: Path) -> list[str]:
    return sorted(
        p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))
    )


def resolve_language(language: str | None) -> str:
    """The language itself when shipped, else English."""
    return language if language and language in languages() else DEFAULT_LANGUAGE


@cache
def _labels_file(folder: Path) -> dict[str, Any]:
    path = folder / "labels.json"
    if not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def labels(language: str) -> dict[str, Any]:
    """A language's words (labels.json), with English filling what it lacks (read once)."""
    return _merged_labels(TEMPLATES, resolve_language(language))


@cache
def _merged_labels(folder: Path, language: str) -> dict[str, Any]:
    base = _labels_file(folder / DEFAULT_LANGUAGE)
    own = _labels_file(folder / language)
    merged = dict(base)
    for key, value in own.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merged[key] = {**base[key], **value}
        else:
            merged[key] = value
    return merged


def _humane(value: str) -> str:
    return value.replace("_", " ")


def status_label(status: str | None, language: str) -> str:
    """A status or response position (not_started, supported_in_part...) in the reader's words."""
    if not status:
        return "—"
    return str(labels(language).get("statuses", {}).get(status) or _humane(status))


def _term(group: str, value: Any, language: str) -> str:
    if value is None or value == "":
        return ""
    return str(labels(language).get(group, {}).get(str(value)) or _humane(str(value)))


# --- rendering ---------------------------------------------------------------------------


def _finalize(value: Any) -> Any:
    return "" if value is None else value


@cache
def _environment(root: Path) -> Environment:
    env = Environment(
        loader=FileSystemLoader(root, encoding="utf-8"),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        undefined=ChainableUndefined,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters["number"] = _number
    env.filters["day"] = _day
    return env


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


def _position(response: Any) -> str | None:
    if isinstance(response, dict):
        return response.get("position")
    return response or None


def _names(items: Any, language: str = DEFAULT_LANGUAGE) -> str:
    """Names of bodies or States, a State named in the reader's language."""
    if not isinstance(items, list):
        return ""
    names = [_country(i, language) if isinstance(i, dict) else str(i) for i in items]
    return ", ".join(n for n in names if n)


def _template(env: Environment, language: str, name: str) -> tuple[str, Any] | None:
    """The template in the language's folder, else in English's; None when neither has it."""
    for folder in dict.fromkeys((language, DEFAULT_LANGUAGE)):
        try:
            return folder, env.get_template(f"{folder}/{name}")
        except TemplateNotFound:
            continue
    return None


def _country(value: Any, language: str = DEFAULT_LANGUAGE) -> str:
    """A State as events carry it ({iso3, name}): the event's (UN) name in English, the
    country's name in the reader's language otherwise (English when it has none)."""
    if not isinstance(value, dict):
        return "" if value is None else str(value)
    name = str(value.get("name") or value.get("iso3") or "")
    iso3 = value.get("iso3")
    if language == DEFAULT_LANGUAGE or not isinstance(iso3, str):
        return name
    return _country_in(iso3, language) or name


@cache
def _country_names(language: str) -> gettext.NullTranslations:
    # The Debian iso-codes translations that pycountry ships (Khmer among them).
    return gettext.translation(
        "iso3166-1", pycountry.LOCALES_DIR, languages=[language], fallback=True
    )


@cache
def _country_in(iso3: str, language: str) -> str | None:
    country = pycountry.countries.get(alpha_3=iso3.upper()) if len(iso3) == 3 else None
    if country is None:
        return None
    translated = _country_names(language).gettext(country.name)
    return translated if translated != country.name else None


def _safe_url(value: Any) -> str:
    """The URL when it is http(s), else nothing (evidence links come from users)."""
    url = str(value or "").strip()
    return url if re.match(r"https?://[^\s<>\"']+$", url, re.IGNORECASE) else ""


# The CLDR locale whose date format a language's messages use (English: day, month, year, as the
# UN writes them; other languages: their own).
DATE_LOCALES = {"en": "en_GB"}


@pass_context
def _day(context: Context, value: Any) -> str:
    """An ISO date or date-time as its date, written the reader's way (31 January 2017)."""
    if not value:
        return ""
    text = str(value)[:10]
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        return text
    language = str(context.get("language") or DEFAULT_LANGUAGE)
    try:
        return format_date(day, "long", locale=DATE_LOCALES.get(language, language))
    except (UnknownLocaleError, ValueError):
        return text


def _context(language: str, context: dict[str, Any]) -> dict[str, Any]:
    rec = context.get("recommendation") or {}
    links = {
        "recommendation": None,
        "unsubscribe": "",
        "preferences": "",
        **(context.get("links") or {}),
    }
    return {
        **context,
        "recipient": context.get("recipient") or {},
        "event": context.get("event") or {},
        "recommendation": rec,
        "rec": rec,
        "num": rec.get("number") or rec.get("id") or "",
        "data": context.get("data") or {},
        "links": links,
        "language": language,
        "t": labels(language),
        "label": lambda value: status_label(value, language) if value else "",
        "term": lambda group, value: _term(group, value, language),
        "position": _position,
        "names": lambda items: _names(items, language),
        "country": lambda value: _country(value, language),
        "safe_url": _safe_url,
    }


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _tidy(text: str) -> str:
    # Trailing spaces go, except in "-- ", the signature separator.
    lines = [line.rstrip() for line in text.strip().splitlines()]
    lines = ["-- " if line == "--" else line for line in lines]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)) + "\n"


def render(kind: str, channel: Channel, language: str, context: dict[str, Any]) -> Rendered:
    """A message of one kind for one channel in the reader's language (English when missing).

    email: subject, plain text and HTML; sms: text (one line; the caller passes it through
    fit_sms), subject = kind; webhook: subject = kind, text = JSON of the context without the
    recipient and without the signed (per-reader) links, html = None.
    """
    if not _KIND.fullmatch(kind):
        raise KeyError(f"no templates for kind {kind!r}")
    language = resolve_language(language)
    if channel == "webhook":
        return Rendered(subject=kind, text=webhook_text(kind, language, context), html=None)
    if channel not in ("email", "sms"):
        raise ValueError(f"unknown channel {channel!r}")
    env = _environment(TEMPLATES)
    extra: dict[str, Any] = {}

    def part(name: str, required: bool = True) -> str | None:
        found = _template(env, language, f"{kind}.{name}")
        if found is None:
            if required:
                where = " or ".join(dict.fromkeys((language, DEFAULT_LANGUAGE)))
                raise KeyError(f"no template {kind}.{name} in {where}")
            return None
        folder, template = found
        return template.render(_context(folder, context) | extra)

    if channel == "sms":
        return Rendered(subject=kind, text=_one_line(part("sms.j2") or ""), html=None)
    subject = _one_line(part("email.subject.j2") or "")
    text = _tidy(part("email.txt.j2") or "")
    extra["subject"] = subject
    html = part("email.html.j2", required=False)
    return Rendered(subject=subject, text=text, html=html.strip() + "\n" if html else None)


# Stand-ins for what differs between the readers of one event: rendered once, filled per reader.
_SLOTS = {
    "name": "UPRSLOTxNAMEx7Q",
    "unsubscribe": "UPRSLOTxUNSUBSCRIBEx7Q",
    "preferences": "UPRSLOTxPREFERENCESx7Q",
}


class EventEmailRenderer:
    """E-mails of one event for many readers: the templates run once per language, not per reader.

    Only for event kinds, whose context is the same for every reader of the event; the reader's
    name and signed links are filled into the rendered text (escaped in the HTML part).
    """

    def __init__(self, max_entries: int = 512) -> None:
        self.max_entries = max_entries
        self._cache: dict[tuple[Any, ...], Rendered] = {}

    def render(self, event_id: str, kind: str, language: str, context: dict[str, Any]) -> Rendered:
        """The e-mail for one reader (context["recipient"] and context["links"] are theirs)."""
        if kind not in EVENT_KINDS:
            return render(kind, "email", language, context)
        recipient = context.get("recipient") or {}
        links = dict(context.get("links") or {})
        key = (event_id, kind, language, bool(recipient.get("name")), links.get("recommendation"))
        shared = self._cache.get(key)
        if shared is None:
            slotted = {
                **context,
                "recipient": {**recipient, "name": _SLOTS["name"] if recipient.get("name") else ""},
                "links": {
                    **links,
                    "unsubscribe": _SLOTS["unsubscribe"],
                    "preferences": _SLOTS["preferences"],
                },
            }
            shared = render(kind, "email", language, slotted)
            if len(self._cache) >= self.max_entries:
                self._cache.clear()
            self._cache[key] = shared
        values = {
            "name": str(recipient.get("name") or ""),
            "unsubscribe": str(links.get("unsubscribe") or ""),
            "preferences": str(links.get("preferences") or ""),
        }
        return Rendered(
            subject=_fill(shared.subject, values, html=False),
            text=_fill(shared.text, values, html=False),
            html=_fill(shared.html, values, html=True) if shared.html is not None else None,
        )


def _fill(text: str, values: dict[str, str], *, html: bool) -> str:
    # The name goes last: what a reader typed as their name is never read as a slot.
    for slot in ("unsubscribe", "preferences", "name"):
        value = str(escape(values[slot])) if html else values[slot]
        text = text.replace(_SLOTS[slot], value)
    return text


def webhook_text(kind: str, language: str, context: dict[str, Any]) -> str:
    """JSON of the context for machines: no recipient, no signed links, no confirmation code."""
    links = context.get("links") or {}
    data = {k: v for k, v in (context.get("data") or {}).items() if k not in PRIVATE_DATA}
    payload = {
        "kind": kind,
        "language": language,
        "event": context.get("event"),
        "recommendation": context.get("recommendation"),
        "data": data,
        "links": {k: v for k, v in links.items() if k not in PRIVATE_LINKS and v},
    }
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, default=str)


def missing_templates(language: str) -> list[str]:
    """The template files a language folder lacks (English then stands in for them)."""
    folder = TEMPLATES / language
    return [
        f"{language}/{kind}.{suffix}"
        for kind in KINDS
        for suffix in PARTS.values()
        if not (folder / f"{kind}.{suffix}").exists()
    ]


# --- SMS sizing --------------------------------------------------------------------------


def sms_encoding(text: str) -> Literal["GSM-7", "UCS-2"]:
    """GSM-7 when every character is in the GSM 03.38 tables, else UCS-2."""
    if all(c in GSM7_BASIC or c in GSM7_EXTENDED for c in text):
        return "GSM-7"
    return "UCS-2"


def _costs(text: str, encoding: str) -> list[int]:
    if encoding == "GSM-7":
        return [2 if c in GSM7_EXTENDED else 1 for c in text]
    return [2 if ord(c) > 0xFFFF else 1 for c in text]  # UTF-16 code units


def sms_segments(text: str) -> int:
    """Segments an SMS takes: GSM-7 160 alone, 153 per part; UCS-2 70 alone, 67 per part."""
    encoding = sms_encoding(text)
    costs = _costs(text, encoding)
    single, per_part = (160, 153) if encoding == "GSM-7" else (70, 67)
    if sum(costs) <= single:
        return 1
    # Parts never split an escape sequence or a surrogate pair, as phones do it.
    parts, used = 1, 0
    for cost in costs:
        if used + cost > per_part:
            parts, used = parts + 1, 0
        used += cost
    return parts


def is_break_allowed(text: str, index: int) -> bool:
    """Whether text may be cut before text[index] without splitting a combining sequence."""
    if index <= 0 or index >= len(text):
        return True
    before, after = text[index - 1], text[index]
    if unicodedata.category(after).startswith("M") or ord(after) in KHMER_SIGNS:
        return False
    if before == KHMER_COENG or before in JOINERS or after in JOINERS:
        return False
    if "\ud800" <= before <= "\udbff":  # a lone high surrogate in a broken string
        return False
    return not (before == "\r" and after == "\n")


def fit_sms(text: str, link: str | None, max_segments: int) -> str:
    """The text (+ " " + link) when it fits max_segments, else shortened with "…" before the link.

    Latin text is cut at a word boundary; Khmer, written without spaces, between clusters
    (never before a dependent vowel or sign, never after a coeng). A GSM-7 text is shortened
    with "..." rather than "…", which would switch the whole message to UCS-2.
    """
    text = text.strip()
    link = (link or "").strip() or None
    full = f"{text} {link}" if link else text
    if sms_segments(full) <= max_segments:
        return full
    if link and sms_segments(f"… {link}") > max_segments:
        link = None  # a link that cannot fit at all is dropped rather than broken
        if sms_segments(text) <= max_segments:
            return text
    mark = "..." if sms_encoding(text) == "GSM-7" else "…"
    suffix = f"{mark} {link}" if link else mark

    def fits(cut: int) -> bool:
        return sms_segments(text[:cut].rstrip() + suffix) <= max_segments

    def longest(candidates: list[int]) -> int | None:
        # sms_segments grows with the prefix, so the fitting cuts form a prefix of candidates.
        low, high, best = 0, len(candidates) - 1, None
        while low <= high:
            middle = (low + high) // 2
            if fits(candidates[middle]):
                best, low = candidates[middle], middle + 1
            else:
                high = middle - 1
        return best

    at_word = longest(
        [
            i
            for i in range(1, len(text))
            if text[i] in WORD_BREAKS
            or (text[i - 1] in SENTENCE_ENDS and is_break_allowed(text, i))
        ]
    )
    at_cluster = longest([i for i in range(1, len(text)) if is_break_allowed(text, i)])
    # Whole words when that costs little; otherwise (Khmer, very long words) whole clusters.
    if at_word is not None and (at_cluster is None or at_word * 10 >= at_cluster * 7):
        cut = at_word
    elif at_cluster is not None:
        cut = at_cluster
    else:
        return suffix.strip() if sms_segments(suffix.strip()) <= max_segments else ""
    return text[:cut].rstrip() + suffix
