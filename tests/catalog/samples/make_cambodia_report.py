"""Write cambodia_a_hrc_26_16.txt: the recommendations of A/HRC/26/16 as PDF-extracted text.

Built from the demo CSV (text, numbers, States) with the noise a PDF extraction leaves: page
headers and footers, bare page numbers, form feeds, lines broken mid-sentence, a word hyphenated
across a line break, runs of spaces, and the report's own misprint of 118.109 as "118.09".
Run it from anywhere: python tests/catalog/samples/make_cambodia_report.py
"""

from __future__ import annotations

import csv
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "services" / "catalog" / "demo" / "cambodia_upr2_2014_recommendations.csv"
OUT = Path(__file__).with_name("cambodia_a_hrc_26_16.txt")

# The report spells these States out in full.
REPORT_NAMES = {
    "GBR": "United Kingdom of Great Britain and Northern Ireland",
    "USA": "United States of America",
}
LINES_PER_PAGE = 48

FRONT = """\
A/HRC/26/16
United Nations
General Assembly
Distr.: General
27 March 2014

Original: English
Human Rights Council
Twenty-sixth session
Agenda item 6
Universal periodic review
Report of the Working Group on the Universal Periodic Review*
Cambodia
116.  Viet Nam noted the efforts of Cambodia to implement recommendations of the first
review, including on poverty reduction. It made recommendations.
117.  The delegation thanked all delegations for their recommendations, which it had
noted with attention.
II. Conclusions and/or recommendations**
118. The recommendations formulated during the interactive dialogue/listed below have
been examined by Cambodia and enjoy the support of Cambodia:"""

INTRO_119 = """\
119. The following recommendations will be examined by Cambodia, which will provide
responses in due time, but no later than the twenty-sixth session of the Human Rights
Council in June 2014:"""

BACK = """\
120. All conclusions and/or recommendations contained in the present report reflect the
position of the submitting State(s) and/or the State under review. They should not be
construed as endorsed by the Working Group as a whole.
Annex
[English only]
Composition of the delegation
The delegation of Cambodia was headed by H.E. Mr. Om Yentieng, Senior Minister and
President of the Cambodian Human Rights Committee, and composed of the following members:"""


def _item_lines(number: str, text: str, state: str, last: bool) -> list[str]:
    printed = "118.09" if number == "118.109" else number
    body = f"{text} ({state}){'.' if last else ';'}"
    gap = "   " if number.endswith("2") else " "  # some lines carry runs of spaces
    lines = textwrap.wrap(f"{printed}{gap}{body}", width=88, break_on_hyphens=True)
    if number == "118.13":
        # A word hyphenated across the line break, as typeset.
        joined = " ".join(lines)
        at = joined.index("establish")
        lines = [joined[: at + 5] + "-", *textwrap.wrap(joined[at + 5 :], width=88)]
    if number == "118.33" and len(lines) > 1:
        lines[1] = "   " + lines[1]  # indented continuation
    return lines


def build() -> str:
    """Return the sample report text."""
    with DEMO.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert any("establish" in r["text"] for r in rows if r["recommendation_id"] == "118.13")
    body: list[str] = FRONT.split("\n")
    for paragraph in ("118", "119"):
        if paragraph == "119":
            body += INTRO_119.split("\n")
        items = [r for r in rows if r["paragraph"] == paragraph]
        for i, row in enumerate(items):
            state = REPORT_NAMES.get(row["recommending_state_iso3"], row["recommending_state"])
            body += _item_lines(row["recommendation_id"], row["text"], state, i == len(items) - 1)
    body += BACK.split("\n")

    out: list[str] = []
    page = 1
    for start in range(0, len(body), LINES_PER_PAGE):
        if page > 1:
            header = "A/HRC/26/16" if page % 2 else f"{page}    GE.14-12893"
            out.append(f"\f{header}")
            out.append("")
        out += body[start : start + LINES_PER_PAGE]
        out.append("")
        out.append("GE.14-12893  (E)" if page == 1 else str(page))
        page += 1
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    OUT.write_text(build(), encoding="utf-8")
    print(f"wrote {OUT}")
