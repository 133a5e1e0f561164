"""Charts as inline SVG drawn on the server, so they read without JavaScript."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from xml.sax.saxutils import escape

STATUS_ORDER = (
    "fully_implemented",
    "partially_implemented",
    "in_progress",
    "not_started",
    "regressed",
    "no_data",
)
# Distinguishable for the common colour-vision deficiencies; white text is never put on them.
STATUS_COLOURS = {
    "fully_implemented": "#1a7f37",
    "partially_implemented": "#7cb342",
    "in_progress": "#1f6feb",
    "not_started": "#e3a008",
    "regressed": "#c62828",
    "no_data": "#c9ced6",
}
WIDTH = 640
LABEL_H = 18
BAR_H = 16
ROW_H = LABEL_H + BAR_H + 10


def stacked_bars(
    chart_id: str,
    title: str,
    groups: Sequence[dict[str, Any]],
    *,
    label: Callable[[str], str],
    status_label: Callable[[str], str],
) -> str:
    """Horizontal bars, one per group, split by status; the width is the group's share of the
    largest group. Each segment has a tooltip; the figure names itself for screen readers."""
    largest = max((g["total"] for g in groups), default=0) or 1
    height = max(len(groups), 1) * ROW_H + 8
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'width="100%" role="img" aria-labelledby="{chart_id}-t" class="chart">',
        f'<title id="{chart_id}-t">{escape(title)}</title>',
    ]
    for row, group in enumerate(groups):
        y = row * ROW_H + 4
        name = label(group["key"])
        parts.append(
            f'<text x="0" y="{y + 13}" class="chart-label">{escape(name)} '
            f'<tspan class="chart-total">({group["total"]})</tspan></text>'
        )
        x = 0.0
        bar_y = y + LABEL_H
        for status in STATUS_ORDER:
            count = group["by_status"].get(status, 0)
            if not count:
                continue
            width = (WIDTH - 2) * count / largest
            tip = f"{name}: {status_label(status)} {count}"
            parts.append(
                f'<rect x="{x:.1f}" y="{bar_y}" width="{width:.1f}" height="{BAR_H}" '
                f'fill="{STATUS_COLOURS[status]}"><title>{escape(tip)}</title></rect>'
            )
            x += width
    parts.append("</svg>")
    return "".join(parts)


def legend(status_label: Callable[[str], str]) -> list[tuple[str, str]]:
    """(colour, label) pairs in drawing order."""
    return [(STATUS_COLOURS[s], status_label(s)) for s in STATUS_ORDER]
