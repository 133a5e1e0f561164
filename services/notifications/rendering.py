"""Messages in the reader's language: Jinja2 templates per kind, channel and language."""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from jinja2 import Environment, FileSystemLoader, select_autoescape

TEMPLATES = Path(__file__).parent / "templates"
DEFAULT_LANGUAGE = "en"
GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = set("^{}\\[~]|€\f")
ELLIPSIS = "…"


@dataclass
class Rendered:
    subject: str
    text: str
    html: str | None


@cache
def languages() -> list[str]:
    """The languages with a template folder (adding a folder adds a language)."""
    folders = (p for p in TEMPLATES.iterdir() if p.is_dir())
    return sorted(p.name for p in folders if (p / "labels.json").exists())


@cache
def labels(language: str) -> dict[str, Any]:
    """The translated words of a language (statuses, positions, link texts...)."""
    path = TEMPLATES / language / "labels.json"
    if not path.exists():
        path = TEMPLATES / DEFAULT_LANGUAGE / "labels.json"
    return json.loads(path.read_text(encoding="utf-8"))


def status_label(status: str | None, language: str) -> str:
    """A status, response position or verification outcome in the reader's words."""
    if not status:
        return "—"
    words = labels(language).get("statuses", {})
    return str(words.get(status) or labels(DEFAULT_LANGUAGE)["statuses"].get(status, status))


@cache
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    return env


def render(
    kind: str, channel: Literal["email", "sms", "webhook"], language: str, context: dict[str, Any]
) -> Rendered:
    """A message of one kind for one channel, in the language (English when not available)."""
    language = language if language in languages() else DEFAULT_LANGUAGE
    env = _environment()
    name = f"{language}/{kind}.j2"
    try:
        template = env.get_template(name)
    except Exception as exc:
        raise KeyError(f"no template {name!r}") from exc
    words = labels(language)
    base = {
        "recipient": {},
        "event": {},
        "recommendation": None,
        "data": {},
        "links": {},
        **context,
        "t": words,
        "label": lambda value: status_label(value, language),
        "states": lambda rec: ", ".join(
            s.get("name") or s.get("iso3", "") for s in (rec or {}).get("recommending_states", [])
        ),
        "bodies": lambda rec: ", ".join(
            b.get("name", "") for b in (rec or {}).get("responsible_bodies", [])
        ),
    }
    subject = template.render(**base, part="subject").strip()
    text = template.render(**base, part="text").strip() + "\n"
    if channel == "sms":
        sms = template.render(**base, part="sms").strip()
        return Rendered(subject=subject, text=sms, html=None)
    if channel == "webhook":
        return Rendered(subject=kind, text=text, html=None)
    html = env.get_template("_layout.html.j2").render(
        **base,
        language=language,
        subject=subject,
        paragraphs=[p for p in text.split("\n\n") if p.strip()],
    )
    return Rendered(subject=subject, text=text, html=html)


def sms_encoding(text: str) -> Literal["GSM-7", "UCS-2"]:
    """GSM-7 when every character is in the GSM 03.38 alphabet, else UCS-2."""
    return "GSM-7" if all(c in GSM7_BASIC or c in GSM7_EXTENDED for c in text) else "UCS-2"


def _units(text: str) -> int:
    if sms_encoding(text) == "GSM-7":
        return sum(2 if c in GSM7_EXTENDED else 1 for c in text)
    return len(text.encode("utf-16-le")) // 2


def sms_segments(text: str) -> int:
    """Segments an SMS takes: GSM-7 160 (153 per part), UCS-2 70 (67 per part)."""
    units = _units(text)
    single, multi = (160, 153) if sms_encoding(text) == "GSM-7" else (70, 67)
    return 1 if units <= single else -(-units // multi)


def _cut_points(text: str) -> list[int]:
    """Where text may be cut: before spaces, or between characters not joined by a mark."""
    points = []
    for i in range(1, len(text)):
        current, following = text[i - 1], text[i]
        if unicodedata.category(following).startswith("M") or following in "\u200c\u200d":
            continue
        if current == "\u17d2":  # Khmer coeng joins the next consonant
            continue
        points.append(i)
    return points


def fit_sms(text: str, link: str | None, max_segments: int) -> str:
    """The text (and link) within max_segments, shortened at a word or syllable boundary."""
    full = f"{text} {link}" if link else text
    if sms_segments(full) <= max_segments:
        return full
    suffix = f"{ELLIPSIS} {link}" if link else ELLIPSIS

    def best(candidates: list[int]) -> int | None:
        fitting = [
            c for c in candidates if sms_segments(text[:c].rstrip() + suffix) <= max_segments
        ]
        return max(fitting) if fitting else None

    at_space = best([i for i in range(1, len(text)) if text[i] == " "])
    at_boundary = best(_cut_points(text))
    # Prefer whole words; Khmer writes without spaces, so then cut between clusters.
    if at_space is not None and (at_boundary is None or at_boundary - at_space <= 20):
        return text[:at_space].rstrip() + suffix
    if at_boundary is not None:
        return text[:at_boundary].rstrip() + suffix
    return suffix.strip()
