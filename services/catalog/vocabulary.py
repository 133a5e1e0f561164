"""Controlled vocabularies: UPR Info issues, action categories, response positions."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

__all__ = [
    "ACTION_CATEGORIES",
    "ISSUES",
    "RESPONSE_POSITIONS",
    "UnknownIssue",
    "normalise_issue",
    "normalise_position",
    "suggest_action_category",
]

_REFERENCE = Path(__file__).parent / "reference" / "upr_info_issues.json"

ISSUES: tuple[str, ...] = tuple(json.loads(_REFERENCE.read_text(encoding="utf-8")))


class UnknownIssue(ValueError):
    """The label is not one of the UPR Info issues."""

    def __init__(self, label: str) -> None:
        super().__init__(f"unknown issue {label!r}")
        self.label = label


_DASHES = str.maketrans({"\u2013": "-", "\u2014": "-", "\u2010": "-", "\u2019": "'"})


def _issue_key(label: str) -> str:
    # UPR Info itself writes "ESC rights -general", so spaces are ignored altogether.
    return "".join(label.translate(_DASHES).casefold().split())


_ISSUE_BY_KEY: dict[str, str] = {_issue_key(label): label for label in ISSUES}


@lru_cache(maxsize=1024)
def normalise_issue(label: str) -> str:
    """Return the canonical UPR Info issue label (case- and space-insensitive)."""
    canonical = _ISSUE_BY_KEY.get(_issue_key(label))
    if canonical is None:
        raise UnknownIssue(label)
    return canonical


# E. McMahon's action categories, as used by UPR Info.
ACTION_CATEGORIES: dict[int, str] = {
    1: "Minimal action",
    2: "Continuing action",
    3: "Considering action",
    4: "General action",
    5: "Specific action",
}

RESPONSE_POSITIONS = ("supported", "supported_in_part", "noted", "pending")

_POSITION_BY_LABEL: dict[str, str] = {
    "supported": "supported",
    "support": "supported",
    "accepted": "supported",
    "accept": "supported",
    "enjoys the support": "supported",
    "enjoy the support": "supported",
    # States sometimes answer this way; OHCHR counts it as support.
    "already implemented": "supported",
    "in process of implementation": "supported",
    "in the process of implementation": "supported",
    "supported in part": "supported_in_part",
    "supported_in_part": "supported_in_part",
    "partially supported": "supported_in_part",
    "partially accepted": "supported_in_part",
    "accepted in part": "supported_in_part",
    "partly supported": "supported_in_part",
    "partly accepted": "supported_in_part",
    "noted": "noted",
    "rejected": "noted",
    "not supported": "noted",
    "not accepted": "noted",
    "did not enjoy the support": "noted",
    "pending": "pending",
    "will be examined": "pending",
    "to be examined": "pending",
    "under examination": "pending",
    "under consideration": "pending",
}


@lru_cache(maxsize=256)
def normalise_position(label: str) -> str:
    """Map a response label ("Accepted", "rejected", "to be examined"...) to a position."""
    words = " ".join(re.split(r"[\s_\-]+", label.casefold())).strip()
    position = _POSITION_BY_LABEL.get(words)
    if position is None:
        # "pending (to be examined)": the label with a gloss in parentheses.
        head = words.split("(", 1)[0].strip()
        position = _POSITION_BY_LABEL.get(head)
    if position is None:
        raise ValueError(f"unknown response position {label!r}")
    return position


# --- Action category suggestion -------------------------------------------------------------
# First-verb rules, tuned on the UPR Info database of 2014 (87% agreement with its coders over
# 38,298 recommendations). Verbs not listed fall to 4, the commonest category.

_VERBS_BY_CATEGORY: dict[int, str] = {
    1: "seek request share call appeal solicit",
    2: "continue maintain pursue keep persevere persist sustain preserve remain",
    3: (
        "consider reconsider review revise study examine explore envisage reflect "
        "evaluate assess analyse analyze contemplate look think"
    ),
    5: (
        "ratify sign accede abolish amend enact repeal establish investigate issue extend "
        "withdraw decriminalize decriminalise become bring complete incorporate create "
        "allow include conduct eliminate remove prohibit raise reform submit recognize "
        "recognise invite lift accept finalize finalise respond adhere release harmonize "
        "harmonise launch grant introduce implement adopt elaborate formulate enforce "
        "integrate commit initiate criminalize criminalise define set end revoke ban "
        "prosecute publish approve pass align annul outlaw legislate codify "
        "transpose domesticate stop cease declare designate appoint modify impose commute "
        "conclude agree organize organise abrogate report draft close acknowledge train design "
        "join confirm start collect dismantle suspend reinstate present halt proceed carry develop"
    ),
}
_CATEGORY_BY_VERB: dict[str, int] = {
    verb: category for category, verbs in _VERBS_BY_CATEGORY.items() for verb in verbs.split()
}

# Words before the verb that do not change its meaning ("To further ...", "Fully implement").
_FILLER = frozenset(
    "to further that it the is be recommended also and please kindly should government "
    "state".split()
)
_LY_VERBS = frozenset("apply comply supply rely reply multiply ally".split())
# Objects that make a specific verb a general one: "adopt measures" (4) vs "adopt a law" (5).
_GENERAL_OBJECTS = frozenset(
    "measures measure steps step efforts effort action actions policies policy strategies "
    "programmes programs initiatives necessary appropriate effective all further additional "
    "concrete adequate relevant practical specific urgent".split()
)
_SPECIFIC_OBJECTS = frozenset(
    "law laws legislation bill act code national comprehensive independent moratorium "
    "recommendations recommendation plan institution mechanism commission ombudsman".split()
)
# Verbs whose category depends on their object.
_OBJECT_SENSITIVE = frozenset("adopt implement create develop".split())
_WORD = re.compile(r"[a-z]+")
_LEADING_PHRASE = re.compile(
    r"^\s*(?:in|with|while|given|taking|bearing|through|as|within|following|for|on|by|"
    r"recalling|noting)\b[^,]*,\s*",
    re.IGNORECASE,
)


def _is_adverb(word: str) -> bool:
    return word.endswith("ly") and word not in _LY_VERBS


def _first_words(text: str) -> list[str]:
    text = _LEADING_PHRASE.sub("", text, count=1)
    words = _WORD.findall(text.casefold())
    start = 0
    while start < len(words) and (words[start] in _FILLER or _is_adverb(words[start])):
        start += 1
    return words[start:]


def suggest_action_category(text: str) -> int | None:
    """Suggest a McMahon action category (1-5) from the recommendation's first verb."""
    words = _first_words(text)
    if not words:
        return None
    verb, rest = words[0], words[1:6]
    if verb == "give" and "consideration" in rest[:3]:
        return 3
    if (verb, rest[:1]) in (("give", ["continuity"]), ("carry", ["on"])):
        return 2
    category = _CATEGORY_BY_VERB.get(verb, 4)
    if category == 5 and verb in _OBJECT_SENSITIVE:
        for word in rest:
            if word in _SPECIFIC_OBJECTS:
                return 5
            if word in _GENERAL_OBJECTS:
                return 4
    return category
