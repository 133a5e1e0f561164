"""Atom feed of recent changes and iCalendar feed of deadlines."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any
from xml.etree import ElementTree as ET

import icalendar

ATOM_NS = "http://www.w3.org/2005/Atom"


def _text(parent: ET.Element, tag: str, text: str, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}", attrs)
    element.text = text
    return element


def atom(
    recommendations: Sequence[dict[str, Any]],
    *,
    feed_id: str,
    title: str,
    self_url: str,
    alternate_url: str,
    web_url: str,
) -> bytes:
    """An Atom 1.0 document: one entry per recommendation, its update time as `updated`."""
    ET.register_namespace("", ATOM_NS)
    feed = ET.Element(f"{{{ATOM_NS}}}feed")
    _text(feed, "id", feed_id)
    _text(feed, "title", title)
    newest = max(
        (r["updated_at"] for r in recommendations),
        default=dt.datetime(2000, 1, 1, tzinfo=dt.UTC).isoformat(),
    )
    _text(feed, "updated", _rfc3339(newest))
    ET.SubElement(feed, f"{{{ATOM_NS}}}link", {"rel": "self", "href": self_url})
    ET.SubElement(
        feed, f"{{{ATOM_NS}}}link", {"rel": "alternate", "type": "text/html", "href": alternate_url}
    )
    author = ET.SubElement(feed, f"{{{ATOM_NS}}}author")
    _text(author, "name", "UPR Tracker")
    for rec in recommendations:
        url = f"{web_url}/recommendations/{rec['id']}"
        entry = ET.SubElement(feed, f"{{{ATOM_NS}}}entry")
        # The id names the recommendation and the version, so a change is a new entry.
        _text(entry, "id", f"{url}#{_rfc3339(rec['updated_at'])}")
        number = rec.get("number") or rec["id"]
        response = rec.get("response") or "pending"  # a list item's position
        _text(entry, "title", f"{number}: {_shorten(rec['text'], 110)} ({response})")
        _text(entry, "updated", _rfc3339(rec["updated_at"]))
        _text(entry, "published", _rfc3339(rec["created_at"]))
        ET.SubElement(entry, f"{{{ATOM_NS}}}link", {"rel": "alternate", "href": url})
        states = ", ".join(s["name"] for s in rec.get("recommending_states", []))
        lines = [rec["text"], f"Recommended by: {states}" if states else ""]
        lines.append(f"Response: {response}")
        if rec.get("issues"):
            lines.append("Issues: " + ", ".join(rec["issues"]))
        _text(entry, "summary", "\n".join(line for line in lines if line))
        for issue in rec.get("issues", []):
            ET.SubElement(entry, f"{{{ATOM_NS}}}category", {"term": issue})
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)


def _rfc3339(value: str) -> str:
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _shorten(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1].rstrip() + "…"


def calendar(
    deadlines: Sequence[dict[str, Any]], *, name: str, web_url: str, now: dt.datetime
) -> bytes:
    """An iCalendar (RFC 5545) document: one all-day event per deadline."""
    cal = icalendar.Calendar()
    cal.add("prodid", "-//UPR Tracker//deadlines//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", name)
    for d in deadlines:
        due = dt.date.fromisoformat(d["due_on"])
        event = icalendar.Event()
        event.add("uid", f"{d['id']}@upr-tracker")
        event.add("dtstamp", now)
        event.add("dtstart", due)
        event.add("dtend", due + dt.timedelta(days=1))
        met = f" (met {d['met_on']})" if d.get("met_on") else ""
        event.add("summary", f"{d['title']}{met}")
        details = [
            f"Kind: {d['kind']}",
            f"State under review: {d['state_under_review']}"
            + (f", cycle {d['cycle']}" if d.get("cycle") else ""),
        ]
        if d.get("responsible_body"):
            details.append(f"Responsible body: {d['responsible_body']}")
        if d.get("recommendation_id"):
            details.append(f"Recommendation: {d['recommendation_id']}")
            event.add("url", f"{web_url}/recommendations/{d['recommendation_id']}")
        if d.get("overdue"):
            details.append("Overdue")
        event.add("description", "\n".join(details))
        event.add("status", "CONFIRMED")
        event.add("transp", "TRANSPARENT")
        event.add("categories", [d["kind"]])
        cal.add_component(event)
    return cal.to_ical()
