"""Embeddable SVG status badges."""

from __future__ import annotations

from xml.sax.saxutils import escape

from services.web.charts import STATUS_COLOURS

DARK_TEXT = {"partially_implemented", "not_started", "no_data"}


def _width(text: str) -> int:
    # Verdana 11px averages ~6.6px per Latin character; combining marks take no width.
    visible = [c for c in text if not (0x17B4 <= ord(c) <= 0x17D3)]
    return int(len(visible) * 6.6) + 12


def badge(label: str, value: str, status: str, *, font: str) -> str:
    """A two-part badge: label on grey, the status on its colour."""
    left, right = _width(label), _width(value)
    colour = STATUS_COLOURS.get(status, "#6e7781")
    text_colour = "#111" if status in DARK_TEXT else "#fff"
    title = escape(f"{label}: {value}", {'"': "&quot;"})
    font_attr = escape(font, {'"': "&quot;"})
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + right}" height="20" '
        f'role="img" aria-label="{title}"><title>{title}</title>'
        f'<rect width="{left}" height="20" fill="#444d56"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="{colour}"/>'
        f'<g font-family="{font_attr}" font-size="11" text-anchor="middle">'
        f'<text x="{left / 2:.1f}" y="14" fill="#fff">{escape(label)}</text>'
        f'<text x="{left + right / 2:.1f}" y="14" fill="{text_colour}">{escape(value)}</text>'
        f"</g></svg>"
    )
