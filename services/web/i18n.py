"""Message catalogues (one JSON file per language under locales/) and language choice."""

from __future__ import annotations

import datetime as dt
import gettext
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pycountry
from babel import UnknownLocaleError
from babel.dates import format_date

LOCALES = Path(__file__).parent / "locales"
DEFAULT = "en"
COOKIE = "lang"
# The CLDR locale whose date format a language's pages use (English: day, month, year, as the UN
# writes them; other languages: their own).
DATE_LOCALES = {"en": "en_GB"}


@cache
def catalogues() -> dict[str, dict[str, Any]]:
    """Every catalogue by language code; adding a file adds a language."""
    return {
        path.stem: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(LOCALES.glob("*.json"))
    }


def languages() -> list[str]:
    """The language codes, English first."""
    return sorted(catalogues(), key=lambda code: (code != DEFAULT, code))


def _lookup(catalogue: dict[str, Any], key: str) -> Any:
    node: Any = catalogue
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


@cache
def _country_names(language: str) -> gettext.NullTranslations:
    # The Debian iso-codes translations that pycountry ships (Khmer among them).
    return gettext.translation(
        "iso3166-1", pycountry.LOCALES_DIR, languages=[language], fallback=True
    )


@cache
def country_name(code: str, language: str = DEFAULT) -> str:
    """A country's short name in a language from its ISO3 code (English when that language has
    none; the code itself when it is not a country)."""
    country = pycountry.countries.get(alpha_3=code.upper()) if len(code) == 3 else None
    if country is None:
        return code
    if language != DEFAULT:
        translated = _country_names(language).gettext(country.name)
        if translated != country.name:
            return translated
    return getattr(country, "common_name", None) or country.name


@dataclass(frozen=True)
class Translator:
    """Messages of one language, falling back to English, then to the key itself."""

    language: str

    def __call__(self, key: str, **values: Any) -> str:
        text = _lookup(catalogues()[self.language], key)
        if not isinstance(text, str):
            text = _lookup(catalogues()[DEFAULT], key)
        if not isinstance(text, str):
            text = key.rsplit(".", 1)[-1].replace("_", " ")
        return text.format(**values) if values else text

    def country(self, code: str) -> str:
        """A country's name in this language, from its ISO3 code."""
        return country_name(code, self.language)

    def date(self, value: Any) -> str:
        """An ISO date or date-time as its date, written this language's way (31 January 2017)."""
        if not value:
            return ""
        text = str(value)[:10]
        try:
            day = dt.date.fromisoformat(text)
            return format_date(day, "long", locale=DATE_LOCALES.get(self.language, self.language))
        except (UnknownLocaleError, ValueError):
            return text

    def state(self, ref: dict[str, Any]) -> str:
        """A State as the catalog gives it ({iso3, name}): the catalog's (UN) name in English,
        the country's name in this language otherwise."""
        if self.language == DEFAULT or not ref.get("iso3"):
            return str(ref.get("name") or ref.get("iso3") or "")
        return self.country(str(ref["iso3"]))

    def has(self, key: str) -> bool:
        """Whether the key is in this language or English."""
        return any(isinstance(_lookup(catalogues()[c], key), str) for c in {self.language, DEFAULT})

    @property
    def meta(self) -> dict[str, Any]:
        """The catalogue's _meta block (name, font stack)."""
        return catalogues()[self.language].get("_meta", {})


def negotiate(query: str | None, cookie: str | None, accept_language: str | None) -> str:
    """The language: ?lang=, then the cookie, then Accept-Language, then English."""
    known = catalogues()
    for candidate in (query, cookie):
        if candidate and candidate.lower() in known:
            return candidate.lower()
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        code = tag.split("-")[0].lower()
        if code in known and quality > 0:
            ranked.append((-quality, position, code))
    return min(ranked)[2] if ranked else DEFAULT
