"""Import readers: turn the text of an uploaded file into recommendation records (no DB)."""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import Any

from services.catalog.countries import (
    Country,
    UnknownCountry,
    country_by_iso3,
    resolve_country,
)
from services.catalog.vocabulary import UnknownIssue, normalise_issue, normalise_position

__all__ = [
    "FormatError",
    "RowResult",
    "decode_upload",
    "read_positions_csv",
    "read_report_text",
    "read_upr_info_csv",
]

UPR_INFO_SOURCE = "UPR Info database"
FINAL_RESPONSE_SOURCE = "Addendum / HRC adoption"


@dataclass(slots=True)
class RowResult:
    """One record read from a file, or the reason it was rejected."""

    line: int
    record: dict[str, Any] | None = None
    error: str | None = None


class FormatError(ValueError):
    """The whole file is unusable; the message is meant for the person who uploaded it."""


# --- Decoding ---------------------------------------------------------------------------------


def decode_upload(data: bytes) -> str:
    """Decode an upload: UTF-8 (with or without BOM) or UTF-16 with BOM; anything else fails."""
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise FormatError("the file is UTF-32 text; save it as UTF-8 and upload it again")
    if data.startswith(codecs.BOM_UTF8):
        encoding, body = "utf-8", data[len(codecs.BOM_UTF8) :]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding, body = "utf-16", data  # the codec reads the BOM for the byte order
    else:
        encoding, body = "utf-8", data
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError as exc:
        raise FormatError(
            f"the file is not UTF-8 or UTF-16 text (byte 0x{exc.object[exc.start]:02X} at "
            f"position {exc.start} is not valid {encoding.upper()}); save it as UTF-8 "
            "(in Excel: 'CSV UTF-8') and upload it again"
        ) from exc
    if "\x00" in text:
        raise FormatError(
            "the file contains NUL bytes: it is not text (or it is UTF-16 without a byte-order "
            "mark); save it as UTF-8 and upload it again"
        )
    return text


# --- Shared field parsing ---------------------------------------------------------------------


def _clean(value: str) -> str:
    return " ".join(value.split())


_LIST_SEPARATORS = re.compile(r"\s*[;,/]\s*")


def _resolve_states(value: str, errors: list[str]) -> list[str]:
    """Resolve a cell naming one State, or several separated by ';', ',' or '/'."""
    value = _clean(value)
    if not value:
        errors.append("missing recommending State")
        return []
    try:
        return [resolve_country(value).iso3]
    except UnknownCountry:
        pass
    # A comma can belong to a name ("Korea, Republic of"), so split only when the whole fails.
    parts = [p for p in _LIST_SEPARATORS.split(value) if p]
    states: list[str] = []
    for part in parts if len(parts) > 1 else [value]:
        try:
            states.append(resolve_country(part).iso3)
        except UnknownCountry:
            errors.append(f"unknown recommending State {part!r}")
    return list(dict.fromkeys(states))


def _iso3_states(value: str, errors: list[str]) -> list[str]:
    codes = [c for c in re.split(r"[\s;,/]+", value) if c]
    if not codes:
        errors.append("missing recommending State")
    states: list[str] = []
    for code in codes:
        try:
            states.append(country_by_iso3(code).iso3)
        except UnknownCountry:
            errors.append(f"unknown recommending State {code!r}")
    return list(dict.fromkeys(states))


def _state_under_review(name: str, iso3: str, errors: list[str]) -> str | None:
    name, iso3 = _clean(name), _clean(iso3)
    try:
        if iso3:
            return country_by_iso3(iso3).iso3
        if name:
            return resolve_country(name).iso3
    except UnknownCountry as exc:
        errors.append(f"unknown State under review {exc.value!r}")
        return None
    errors.append("missing State under review")
    return None


def _issues(value: str, errors: list[str]) -> list[str]:
    issues: list[str] = []
    for label in value.split(";"):
        label = label.strip()
        if not label:
            continue
        try:
            issues.append(normalise_issue(label))
        except UnknownIssue as exc:
            errors.append(str(exc))
    return list(dict.fromkeys(issues))


def _action_category(value: str, errors: list[str]) -> int | None:
    value = value.strip()
    if not value:
        return None
    if value in ("1", "2", "3", "4", "5"):
        return int(value)
    errors.append(f"action category {value!r} is not a number from 1 to 5")
    return None


def _positive_int(
    value: str, what: str, errors: list[str], *, required: bool = False
) -> int | None:
    value = value.strip()
    if not value:
        if required:
            errors.append(f"missing {what}")
        return None
    if value.isdigit() and int(value) > 0:
        return int(value)
    errors.append(f"{what} {value!r} is not a positive whole number")
    return None


def _date(value: str, what: str, errors: list[str]) -> date | None:
    value = value.strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors.append(f"{what} {value!r} is not a date (YYYY-MM-DD)")
        return None


def _position(value: str, what: str, errors: list[str]) -> str | None:
    try:
        return normalise_position(value)
    except ValueError:
        errors.append(f"unknown {what} {value.strip()!r}")
        return None


def _record(**fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "mechanism": "upr",
        "body": None,
        "document": None,
        "number": None,
        "paragraph": None,
        "text": "",
        "cycle": None,
        "session": None,
        "review_date": None,
        "state_under_review": "",
        "recommending_states": [],
        "responses": [],
        "issues": [],
        "action_category": None,
        "affected_groups": [],
        "sdg_goals": [],
    }
    record.update(fields)
    return record


def _response(
    position: str,
    *,
    declared_label: str | None = None,
    source: str | None = None,
    when: date | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    return {
        "position": position,
        "declared_label": declared_label,
        "source": source,
        "date": when,
        "note": note,
    }


# --- CSV plumbing -----------------------------------------------------------------------------


class _Columns:
    """Header lookup by case-insensitive name; missing cells read as ''."""

    def __init__(self, header: list[str]) -> None:
        self.index: dict[str, int] = {}
        for i, name in enumerate(header):
            self.index.setdefault(_clean(name).casefold(), i)

    def find(self, *names: str) -> int | None:
        for name in names:
            i = self.index.get(name.casefold())
            if i is not None:
                return i
        return None

    def require(self, groups: list[tuple[str, ...]], header: list[str]) -> None:
        missing = [" or ".join(g) for g in groups if self.find(*g) is None]
        if missing:
            found = ", ".join(repr(_clean(h)) for h in header if h.strip()) or "none"
            noun = "column" if len(missing) == 1 else "columns"
            raise FormatError(f"missing required {noun}: {', '.join(missing)} (found: {found})")


def _cell(fields: list[str], index: int | None) -> str:
    if index is None or index >= len(fields):
        return ""
    return fields[index]


def _csv_rows(text: str) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """Return the header and an iterator of (first physical line, fields) for the data rows."""
    if not text.strip():
        raise FormatError("the file is empty")
    first_line = text.lstrip("\ufeff").split("\n", 1)[0]
    # Excel writes ';'-separated CSV in locales where ',' is the decimal mark.
    delimiter = max((",", ";", "\t"), key=first_line.count)
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except csv.Error as exc:
        raise FormatError(f"line 1: the file is not valid CSV ({exc})") from exc

    def rows() -> Iterator[tuple[int, list[str]]]:
        previous = reader.line_num
        try:
            for fields in reader:
                start, previous = previous + 1, reader.line_num
                if "".join(fields).strip():
                    yield start, fields
        except csv.Error as exc:
            raise FormatError(f"line {reader.line_num}: the file is not valid CSV ({exc})") from exc

    return header, rows()


# --- UPR Info CSV -----------------------------------------------------------------------------

_UPR_INFO_REQUIRED = [("SuR",), ("Recommendation",), ("RS",), ("Response",), ("Cycle",)]


def read_upr_info_csv(text: str) -> Iterator[RowResult]:
    """Read a UPR Info database export (SuR, Recommendation, RS, Response, Cycle, ...)."""
    header, rows = _csv_rows(text)
    columns = _Columns(header)
    columns.require(_UPR_INFO_REQUIRED, header)
    i_sur, i_text, i_rs, i_response, i_cycle = (columns.find(*g) for g in _UPR_INFO_REQUIRED)
    i_category, i_issue = columns.find("ActionCategory"), columns.find("Issue")
    return _upr_info_rows(rows, i_sur, i_text, i_rs, i_response, i_cycle, i_category, i_issue)


Errors = tuple[str, ...]


# Cells repeat across a bulk file (States, responses, issue lists): parse each distinct one once.
@lru_cache(maxsize=4096)
def _sur_cell(value: str) -> tuple[str | None, Errors]:
    errors: list[str] = []
    return _state_under_review(value, "", errors), tuple(errors)


@lru_cache(maxsize=4096)
def _states_cell(value: str) -> tuple[list[str], Errors]:
    errors: list[str] = []
    return _resolve_states(value, errors), tuple(errors)


@lru_cache(maxsize=4096)
def _issues_cell(value: str) -> tuple[list[str], Errors]:
    errors: list[str] = []
    return _issues(value, errors), tuple(errors)


@lru_cache(maxsize=256)
def _upr_info_response_cell(value: str) -> tuple[str | None, str | None, Errors]:
    errors: list[str] = []
    declared = _clean(value)
    position = _position(declared, "response", errors) if declared else None
    return position, declared or None, tuple(errors)


@lru_cache(maxsize=256)
def _small_cells(category: str, cycle: str) -> tuple[int | None, int | None, Errors]:
    errors: list[str] = []
    action_category = _action_category(category, errors)
    cycle_number = _positive_int(cycle, "cycle", errors, required=True)
    return action_category, cycle_number, tuple(errors)


def _upr_info_rows(
    rows: Iterator[tuple[int, list[str]]],
    i_sur: int | None,
    i_text: int | None,
    i_rs: int | None,
    i_response: int | None,
    i_cycle: int | None,
    i_category: int | None,
    i_issue: int | None,
) -> Iterator[RowResult]:
    width = 1 + max(
        i for i in (i_sur, i_text, i_rs, i_response, i_cycle, i_category, i_issue) if i is not None
    )
    for line, fields in rows:
        if len(fields) < width:
            fields = fields + [""] * (width - len(fields))
        sur, sur_errors = _sur_cell(fields[i_sur] if i_sur is not None else "")
        text = " ".join(fields[i_text].split()) if i_text is not None else ""
        states, state_errors = _states_cell(fields[i_rs] if i_rs is not None else "")
        position, declared, response_errors = _upr_info_response_cell(
            fields[i_response] if i_response is not None else ""
        )
        issues, issue_errors = _issues_cell(fields[i_issue] if i_issue is not None else "")
        category, cycle, small_errors = _small_cells(
            fields[i_category] if i_category is not None else "",
            fields[i_cycle] if i_cycle is not None else "",
        )
        if (
            not text
            or sur_errors
            or state_errors
            or response_errors
            or issue_errors
            or small_errors
        ):
            errors = [*sur_errors, *(() if text else ("missing text",)), *state_errors]
            errors += [*response_errors, *small_errors, *issue_errors]
            yield RowResult(line, None, "; ".join(errors))
            continue
        responses = []
        if position is not None:
            responses.append(
                {
                    "position": position,
                    "declared_label": declared,
                    "source": UPR_INFO_SOURCE,
                    "date": None,
                    "note": None,
                }
            )
        # A literal rather than _record(): this loop runs once per row of a 40,000-row file.
        yield RowResult(
            line,
            {
                "mechanism": "upr",
                "body": None,
                "document": None,
                "number": None,
                "paragraph": None,
                "text": text,
                "cycle": cycle,
                "session": None,
                "review_date": None,
                "state_under_review": sur,
                "recommending_states": list(states),
                "responses": responses,
                "issues": list(issues),
                "action_category": category,
                "affected_groups": [],
                "sdg_goals": [],
            },
        )


# --- Positions CSV (the Cambodia demo sheet) --------------------------------------------------

_POSITIONS_REQUIRED = [
    ("sur_iso3", "state_under_review"),
    ("recommendation_id",),
    ("text",),
    ("recommending_state_iso3", "recommending_state"),
    ("wg_position",),
]


def read_positions_csv(text: str) -> Iterator[RowResult]:
    """Read a sheet of numbered recommendations with the positions taken at and after the review."""
    header, rows = _csv_rows(text)
    columns = _Columns(header)
    columns.require(_POSITIONS_REQUIRED, header)
    # The State's own word is in "<state>_declared" (e.g. cambodia_declared) or "declared".
    declared_names = [h for h in columns.index if h == "declared" or h.endswith("_declared")]
    find = columns.find
    index = {
        "sur_iso3": find("sur_iso3"),
        "sur_name": find("state_under_review"),
        "cycle": find("cycle"),
        "session": find("session"),
        "review_date": find("review_date"),
        "document": find("wg_report", "document"),
        "number": find("recommendation_id"),
        "paragraph": find("paragraph"),
        "text": find("text"),
        "rs_iso3": find("recommending_state_iso3"),
        "rs_name": find("recommending_state"),
        "wg_position": find("wg_position"),
        "final": find("final_response"),
        "declared": find(*declared_names) if declared_names else None,
        "response_note": find("response_note"),
        "data_note": find("data_note"),
        "category": find("upr_info_action_category", "action_category"),
        "issues": find("upr_info_issues", "issues"),
    }
    return _positions_rows(rows, index)


def _positions_rows(
    rows: Iterator[tuple[int, list[str]]], index: dict[str, int | None]
) -> Iterator[RowResult]:
    for line, fields in rows:
        cell: dict[str, str] = {key: _clean(_cell(fields, i)) for key, i in index.items()}
        errors: list[str] = []
        sur = _state_under_review(cell["sur_name"], cell["sur_iso3"], errors)
        text = cell["text"]
        if not text:
            errors.append("missing text")
        if cell["rs_iso3"]:
            states = _iso3_states(cell["rs_iso3"], errors)
        else:
            states = _resolve_states(cell["rs_name"], errors)
        number = cell["number"] or None
        paragraph = cell["paragraph"] or (number.split(".", 1)[0] if number else None)
        cycle = _positive_int(cell["cycle"], "cycle", errors)
        session = _positive_int(cell["session"], "session", errors)
        review_date = _date(cell["review_date"], "review date", errors)
        document = cell["document"] or None

        responses = []
        wg_position = (
            _position(cell["wg_position"], "wg_position", errors) if cell["wg_position"] else None
        )
        final = _position(cell["final"], "final_response", errors) if cell["final"] else None
        if wg_position is not None:
            source = f"Working Group report {document}" if document else "Working Group report"
            # data_note is about how the report printed the recommendation, so it goes with it.
            responses.append(
                _response(
                    wg_position, source=source, when=review_date, note=cell["data_note"] or None
                )
            )
        if final is not None and (wg_position in (None, "pending") or final != wg_position):
            responses.append(
                _response(
                    final,
                    declared_label=cell["declared"] or None,
                    source=FINAL_RESPONSE_SOURCE,
                    note=cell["response_note"] or None,
                )
            )
        category = _action_category(cell["category"], errors)
        issues = _issues(cell["issues"], errors)
        if errors:
            yield RowResult(line, None, "; ".join(errors))
            continue
        yield RowResult(
            line,
            _record(
                document=document,
                number=number,
                paragraph=paragraph,
                text=text,
                cycle=cycle,
                session=session,
                review_date=review_date,
                state_under_review=sur,
                recommending_states=states,
                responses=responses,
                issues=issues,
                action_category=category,
            ),
        )


# --- Working Group report text ----------------------------------------------------------------

# Lines that PDF extraction leaves between pages: the document symbol, the UN job number,
# the barcode, page numbers, alone or together.
_SYMBOL = r"(?=\S*\d)[A-Z]{1,6}(?:/[A-Za-z0-9.\-]+){2,}"
_PAGE_NOISE = (
    re.compile(rf"^(?:\d{{1,3}}\s+)?{_SYMBOL}(?:\s+\d{{1,3}})?$"),
    re.compile(r"^(?:\d{1,3}\s+)?GE\.\d{2}-\d{3,6}(?:\s*\([A-Z]\))?(?:\s+\d{1,3})?"),
    re.compile(r"^\*\d{5,}\*$"),
    re.compile(r"^[-\u2013]?\s*\d{1,3}\s*[-\u2013]?$"),
    re.compile(r"^Page \d+(?: of \d+)?$", re.IGNORECASE),
)
_SUB = re.compile(r"^(\d{1,3})\.(\d{1,3})\.?(?:\s+(.*))?$")
_PARA = re.compile(r"^(\d{1,3})\.\s+(.*)$")
# A heading ends any section: "II. Conclusions and/or recommendations", "Annex".
_HEADING = re.compile(r"^(?:[IVX]{1,5}\.\s+[A-Z]|Annex(?:e)?\b|\[English only\])")
_WORDS = re.compile(r"[a-z]+(?:-[a-z]+)*")
_END_HYPHEN = re.compile(r"([A-Za-z]+)[-\u2010]$")
_NEXT_WORD = re.compile(r"[a-z]+")

# Hyphenated compounds split at their own hyphen keep it; other line-end hyphens are word breaks.
_COMPOUND_HEADS = frozenset(
    "non anti self well follow long short co multi inter cross post pre ex ill mid semi sub pro "
    "counter socio child gender human all full high low large small state community awareness "
    "free first part drop mother rural family health decision law broad open age out "
    "capacity peace nation government".split()
)
_COMPOUND_TAILS = frozenset(
    "up based related making friendly oriented term being free led wide level specific sensitive "
    "raising building owned run scale time income speaking going out off like bound".split()
)

_NOTED = ("did not enjoy", "do not enjoy", "does not enjoy", "not supported", "noted", "rejected")
_PENDING = ("will be examined", "to be examined", "will examine", "will provide responses")
_SUPPORTED = (
    "enjoy the support",
    "enjoys the support",
    "supported",
    "accepted",
    "supports",
    "already implemented",
    "process of implementation",
)


_LIST_INTRO = re.compile(r":[\s*\d]*$")


def _is_list_intro(intro: str) -> bool:
    """Whether a paragraph introduces a list of recommendations ("... of Cambodia:")."""
    return "recommendation" in intro.casefold() and _LIST_INTRO.search(intro) is not None


def _section_position(intro: str) -> str | None:
    if not _is_list_intro(intro):
        return None
    intro = " ".join(intro.casefold().split())
    for phrases, position in ((_NOTED, "noted"), (_PENDING, "pending"), (_SUPPORTED, "supported")):
        if any(p in intro for p in phrases):
            return position
    return None


def _is_noise(line: str, document: str | None) -> bool:
    return line == document or any(p.match(line) for p in _PAGE_NOISE)


def _join_lines(lines: list[str], words: set[str]) -> str:
    """Join the lines of one recommendation, mending words hyphenated across a line break."""
    text = lines[0]
    for nxt in lines[1:]:
        if text.endswith("\u00ad"):  # soft hyphen: always a word break
            text = text[:-1] + nxt
            continue
        end = _END_HYPHEN.search(text)
        start = _NEXT_WORD.match(nxt)
        if end is None:
            text = f"{text} {nxt}"
        elif start is None:
            text += nxt  # "Franco-" + "German": keep the hyphen
        else:
            head, tail = end.group(1).casefold(), start.group(0)
            compound = f"{head}-{tail}" in words or (
                head + tail not in words and (head in _COMPOUND_HEADS or tail in _COMPOUND_TAILS)
            )
            text = text + nxt if compound else text[:-1] + nxt
    return " ".join(text.split())


def _close_paren(text: str) -> int | None:
    """Index of the '(' matching the ')' that ends text, or None."""
    depth = 0
    for i in range(len(text) - 1, -1, -1):
        if text[i] == ")":
            depth += 1
        elif text[i] == "(":
            depth -= 1
            if depth == 0:
                return i
    return None


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, []
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch in ",;" and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def _state_name(name: str) -> Country | None:
    # Reports spell States out; a short token in parentheses is an acronym ("(ICCPR)", "(IT)").
    if len(name) <= 3:
        return None
    try:
        return resolve_country(name)
    except UnknownCountry:
        return None


def _attribution(inner: str) -> list[str] | None:
    """The ISO3 codes of the States in a parenthetical, or None if it is not an attribution."""
    states: list[str] = []
    for part in _split_top_level(inner):
        country = _state_name(part)
        if country is not None:
            states.append(country.iso3)
            continue
        pieces = [_state_name(p) for p in re.split(r"\s+and\s+", part)]
        if len(pieces) < 2 or any(p is None for p in pieces):
            return None
        states.extend(p.iso3 for p in pieces if p is not None)
    return states or None


_LIST_END = re.compile(r"\s*(?:;\s*(?:and|or)?|\.)\s*$")


def _split_attribution(text: str) -> tuple[str, list[str]]:
    """Split "Ratify X (France) (Chile);" into its text and its recommending States."""
    rest = _LIST_END.sub("", text)
    states: list[str] = []
    while rest.endswith(")"):
        start = _close_paren(rest)
        found = _attribution(rest[start + 1 : -1]) if start is not None else None
        if found is None or start is None:
            break
        states[:0] = found
        rest = rest[:start].rstrip()
    if not states:
        return text, []
    return rest.rstrip(" ,;"), list(dict.fromkeys(states))


def _no_state(text: str) -> str:
    rest = _LIST_END.sub("", text)
    start = _close_paren(rest) if rest.endswith(")") else None
    if start is None:
        return "no recommending State in parentheses at the end"
    return f"unknown recommending State {rest[start + 1 : -1].strip()!r}"


def _drops_one_digit(expected: str, printed: str) -> bool:
    return len(printed) == len(expected) - 1 and any(
        expected[:i] + expected[i + 1 :] == printed for i in range(len(expected))
    )


@dataclass
class _Section:
    para: int
    line: int
    intro: list[str]
    position: str | None = None
    started: bool = False
    expected: int = 1
    last: int | None = None
    seen: dict[int, int] = field(default_factory=dict)


@dataclass
class _Item:
    number: str
    line: int
    lines: list[str]
    position: str | None  # None: the record is already rejected


def read_report_text(
    text: str,
    *,
    state_under_review: str,
    cycle: int,
    session: int | None,
    review_date: date | None,
    document: str | None,
) -> Iterator[RowResult]:
    """Read the recommendations sections of a UPR Working Group report extracted from its PDF."""
    sur = resolve_country(state_under_review).iso3
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    cleaned = [" ".join(line.replace("\f", " ").split()) for line in lines]
    words = set(_WORDS.findall(" ".join(cleaned).casefold()))
    source = f"Working Group report {document}" if document else "Working Group report"
    results: list[RowResult] = []
    section: _Section | None = None
    item: _Item | None = None
    found_section = False

    def flush() -> None:
        nonlocal item
        if item is None:
            return
        current, item = item, None
        if current.position is None:
            return
        body, states = _split_attribution(
            _join_lines(current.lines, words) if current.lines else ""
        )
        if not body:
            results.append(RowResult(current.line, None, f"{current.number}: missing text"))
        elif not states:
            results.append(RowResult(current.line, None, f"{current.number}: {_no_state(body)}"))
        else:
            paragraph = current.number.split(".", 1)[0]
            record = _record(
                document=document,
                number=current.number,
                paragraph=paragraph,
                text=body,
                cycle=cycle,
                session=session,
                review_date=review_date,
                state_under_review=sur,
                recommending_states=states,
                responses=[_response(current.position, source=source, when=review_date)],
            )
            results.append(RowResult(current.line, record))

    def start_item(section: _Section, printed: str, first: str | None, line: int) -> None:
        nonlocal item
        para = section.para
        sub = int(printed)
        expected = section.expected
        position: str | None = section.position
        if (
            printed.startswith("0")
            and expected not in section.seen
            and _drops_one_digit(str(expected), printed)
        ):
            results.append(
                RowResult(line, None, f"number {para}.{printed} read as {para}.{expected}")
            )
            sub = expected
        if sub in section.seen:
            results.append(
                RowResult(line, None, f"number {para}.{sub} repeats line {section.seen[sub]}")
            )
            position = None
        elif sub > expected:
            before = f"{para}.{section.last}" if section.last is not None else f"paragraph {para}"
            results.append(RowResult(line, None, f"numbering skips from {before} to {para}.{sub}"))
        elif sub < expected:
            order = f"number {para}.{sub} is out of order (after {para}.{section.last})"
            results.append(RowResult(line, None, order))
        if sub not in section.seen:
            section.seen[sub] = line
            section.last = sub if sub >= expected else section.last
            section.expected = max(expected, sub + 1)
        item = _Item(f"{para}.{sub}", line, [first] if first else [], position)

    for lineno, line in enumerate(cleaned, start=1):
        if not line or _is_noise(line, document):
            continue
        if _HEADING.match(line):
            flush()
            section = None
            continue
        sub_match = _SUB.match(line)
        if sub_match and section is not None and int(sub_match.group(1)) == section.para:
            flush()
            if not section.started:
                section.started = True
                section.position = _section_position(" ".join(section.intro))
                if section.position is not None:
                    found_section = True
                elif _is_list_intro(" ".join(section.intro)):
                    results.append(
                        RowResult(
                            section.line,
                            None,
                            f"paragraph {section.para}: cannot tell whether its recommendations "
                            "are supported, noted or pending",
                        )
                    )
            if section.position is not None:
                start_item(section, sub_match.group(2), sub_match.group(3), lineno)
            continue
        para_match = _PARA.match(line)
        if para_match and (section is None or int(para_match.group(1)) > section.para):
            flush()
            section = _Section(int(para_match.group(1)), lineno, [para_match.group(2)])
            continue
        if item is not None:
            item.lines.append(line)
        elif section is not None and not section.started:
            section.intro.append(line)
    flush()
    if not found_section:
        raise FormatError(
            "no recommendations found: expected a paragraph such as '118. The recommendations "
            "below enjoy the support of ...' followed by numbered recommendations '118.1 ...'"
        )
    return iter(results)
