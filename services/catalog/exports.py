"""The project's own CSV, JSON and NDJSON: written by the export, read back by the import."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from services.catalog.formats import FormatError, RowResult

CSV_COLUMNS = (
    "id",
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
    "response",
    "response_history",
    "issues",
    "action_category",
    "action_category_suggested",
    "affected_groups",
    "sdg_goals",
    "responsible_bodies",
    "priorities",
    "cluster_id",
    "version",
    "updated_at",
)
LIST_SEPARATOR = "; "
# Spreadsheets run cells starting with these as formulas; the export defuses them.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _defuse(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _restore(value: str) -> str:
    return value[1:] if value.startswith("'") and value[1:].startswith(FORMULA_STARTS) else value


def csv_header() -> str:
    """The first line of a CSV export."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(CSV_COLUMNS)
    return buffer.getvalue()


def csv_row(snapshot: dict[str, Any]) -> str:
    """One recommendation as a CSV line (lists joined with '; ', nested data as JSON)."""
    response = snapshot.get("response") or {}
    values = {
        **snapshot,
        "state_under_review": snapshot["state_under_review"]["iso3"],
        "recommending_states": LIST_SEPARATOR.join(
            c["iso3"] for c in snapshot["recommending_states"]
        ),
        "response": response.get("position", ""),
        "response_history": json.dumps(snapshot["response_history"], ensure_ascii=False),
        "issues": LIST_SEPARATOR.join(snapshot["issues"]),
        "affected_groups": LIST_SEPARATOR.join(snapshot["affected_groups"]),
        "sdg_goals": LIST_SEPARATOR.join(str(g) for g in snapshot["sdg_goals"]),
        "responsible_bodies": json.dumps(snapshot["responsible_bodies"], ensure_ascii=False),
        "priorities": json.dumps(snapshot["priorities"], ensure_ascii=False),
        "action_category_suggested": "true" if snapshot["action_category_suggested"] else "false",
    }
    cells = ["" if values.get(c) is None else _defuse(str(values[c])) for c in CSV_COLUMNS]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue()


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(";") if part.strip()]


def _json_cell(value: str, column: str) -> Any:
    try:
        return json.loads(value) if value else []
    except json.JSONDecodeError as exc:
        raise ValueError(f"{column} is not valid JSON") from exc


def _record_from_csv(row: dict[str, str]) -> dict[str, Any]:
    def cell(name: str) -> str | None:
        value = _restore((row.get(name) or "").strip())
        return value or None

    suggested = (cell("action_category_suggested") or "").lower() == "true"
    return {
        "id": cell("id"),
        "mechanism": cell("mechanism") or "upr",
        "body": cell("body"),
        "document": cell("document"),
        "number": cell("number"),
        "paragraph": cell("paragraph"),
        "text": cell("text") or "",
        "cycle": cell("cycle"),
        "session": cell("session"),
        "review_date": cell("review_date"),
        "state_under_review": cell("state_under_review") or "",
        "recommending_states": _split(cell("recommending_states") or ""),
        "responses": _json_cell(cell("response_history") or "", "response_history"),
        "issues": _split(cell("issues") or ""),
        "action_category": None if suggested else cell("action_category"),
        "affected_groups": _split(cell("affected_groups") or ""),
        "sdg_goals": _split(cell("sdg_goals") or ""),
        "responsible_bodies": _json_cell(cell("responsible_bodies") or "", "responsible_bodies"),
        "priorities": _json_cell(cell("priorities") or "", "priorities"),
        "cluster_id": cell("cluster_id"),
    }


def read_csv(text: str) -> Iterator[RowResult]:
    """Rows of the project's own CSV export."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        fieldnames = reader.fieldnames
    except csv.Error as exc:
        raise FormatError(f"line 1: malformed CSV ({exc})") from exc
    if fieldnames is None:
        raise FormatError("the file is empty")
    missing = [c for c in ("text", "state_under_review") if c not in fieldnames]
    if missing:
        raise FormatError(f"missing required columns: {', '.join(missing)}")
    while True:
        line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise FormatError(f"line {reader.line_num}: malformed CSV ({exc})") from exc
        if None in row:
            yield RowResult(line=line, record=None, error="more cells than columns")
            continue
        try:
            yield RowResult(line=line, record=_record_from_csv(row), error=None)
        except ValueError as exc:
            yield RowResult(line=line, record=None, error=str(exc))


def _record_from_snapshot(item: Any) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise ValueError("each record must be a JSON object")
    sur = item.get("state_under_review")
    states = item.get("recommending_states") or []
    return {
        "id": item.get("id"),
        "mechanism": item.get("mechanism", "upr"),
        "body": item.get("body"),
        "document": item.get("document"),
        "number": item.get("number"),
        "paragraph": item.get("paragraph"),
        "text": item.get("text"),
        "cycle": item.get("cycle"),
        "session": item.get("session"),
        "review_date": item.get("review_date"),
        "state_under_review": sur.get("iso3") if isinstance(sur, dict) else sur,
        "recommending_states": [s.get("iso3") if isinstance(s, dict) else s for s in states],
        "responses": item.get("response_history") or item.get("responses") or [],
        "issues": item.get("issues") or [],
        "action_category": None
        if item.get("action_category_suggested")
        else item.get("action_category"),
        "affected_groups": item.get("affected_groups") or [],
        "sdg_goals": item.get("sdg_goals") or [],
        "responsible_bodies": item.get("responsible_bodies"),
        "priorities": item.get("priorities"),
        "cluster_id": item.get("cluster_id"),
    }


def read_json(text: str) -> Iterator[RowResult]:
    """Records of the project's JSON export (an array) or NDJSON (one object a line)."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FormatError(f"not valid JSON: {exc}") from exc
        except RecursionError as exc:
            raise FormatError("not usable JSON: nested too deeply") from exc
        numbered: Iterator[tuple[int, Any]] = enumerate(items, start=1)
    else:
        numbered = _ndjson(text)
    for line, item in numbered:
        if isinstance(item, _Bad):
            yield RowResult(line=line, record=None, error=item.reason)
            continue
        try:
            yield RowResult(line=line, record=_record_from_snapshot(item), error=None)
        except ValueError as exc:
            yield RowResult(line=line, record=None, error=str(exc))


class _Bad:
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _ndjson(text: str) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, _Bad(f"not valid JSON: {exc.msg}")
        except RecursionError:
            yield number, _Bad("not usable JSON: nested too deeply")
