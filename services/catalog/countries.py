"""Country names to ISO 3166-1 alpha-3 codes, with the UN's and UPR Info's spellings."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import pycountry

__all__ = ["Country", "UnknownCountry", "country_by_iso3", "is_country", "resolve_country"]


@dataclass(frozen=True)
class Country:
    """A country: its ISO3 code and the name the UN uses for it."""

    iso3: str
    name: str


class UnknownCountry(ValueError):
    """The value names no country we know."""

    def __init__(self, value: str) -> None:
        super().__init__(f"unknown country {value!r}")
        self.value = value


# The UN's short names (UN Terminology / UPR documents) where they differ from pycountry's.
# Netherlands and Gambia keep their plain names: the UPR documents print them that way.
UN_NAMES: dict[str, str] = {
    "BOL": "Bolivia (Plurinational State of)",
    "COD": "Democratic Republic of the Congo",
    "FSM": "Micronesia (Federated States of)",
    "GBR": "United Kingdom of Great Britain and Northern Ireland",
    "IRN": "Iran (Islamic Republic of)",
    "KOR": "Republic of Korea",
    "MDA": "Republic of Moldova",
    "PRK": "Democratic People's Republic of Korea",
    "PSE": "State of Palestine",
    "TUR": "Türkiye",
    "TZA": "United Republic of Tanzania",
    "USA": "United States of America",
    "VAT": "Holy See",
    "VEN": "Venezuela (Bolivarian Republic of)",
}

# Spellings pycountry does not know: former UN names, UPR Info's database, everyday usage.
# Kosovo is deliberately absent: it has no ISO 3166-1 code and is not reviewed in the UPR.
ALIASES: dict[str, str] = {
    "Bolivia": "BOL",
    "Brunei": "BRN",
    "Burma": "MMR",
    "Cape Verde": "CPV",
    "Congo-Brazzaville": "COG",
    "Congo Republic": "COG",
    "Congo-Kinshasa": "COD",
    "Czech Republic": "CZE",
    "DPR Korea": "PRK",
    "DPRK": "PRK",
    "DR Congo": "COD",
    "DRC": "COD",
    "East Timor": "TLS",
    "FYROM": "MKD",
    "Gambia (Republic of The)": "GMB",
    "Great Britain": "GBR",
    "Britain": "GBR",
    "Holy See": "VAT",
    "Ivory Coast": "CIV",
    "Kingdom of Swaziland": "SWZ",
    "Lao PDR": "LAO",
    "Laos": "LAO",
    "Libyan Arab Jamahiriya": "LBY",
    "Macedonia": "MKD",
    "Macedonia FYR": "MKD",
    "FYR Macedonia": "MKD",
    "Republic of Macedonia": "MKD",
    "The former Yugoslav Republic of Macedonia": "MKD",
    "Micronesia": "FSM",
    "Netherlands (Kingdom of the)": "NLD",
    "Occupied Palestinian Territory": "PSE",
    "Palestine": "PSE",
    "Russia": "RUS",
    "Slovak Republic": "SVK",
    "Swaziland": "SWZ",
    "Turkey": "TUR",
    "UK": "GBR",
    "United States of America": "USA",
    "USA": "USA",
    "Vatican": "VAT",
    "Vatican City": "VAT",
}

_APOSTROPHES = re.compile("['`\u2018\u2019\u00b4]")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def _key(value: str) -> str:
    """Fold a name to a lookup key: no accents, case, punctuation, '&' or 'the'; St = Saint."""
    text = unicodedata.normalize("NFKD", value)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = _APOSTROPHES.sub("", text.casefold().replace("&", " and "))
    words = [
        "saint" if word == "st" else word
        for word in _NON_ALNUM.split(text)
        if word and word != "the"
    ]
    return " ".join(words)


def _build_index() -> tuple[dict[str, Country], dict[str, Country]]:
    by_iso3: dict[str, Country] = {}
    by_key: dict[str, Country] = {}

    def add(name: str, country: Country) -> None:
        key = _key(name)
        if key and by_key.setdefault(key, country) != country:
            raise RuntimeError(f"country spelling {name!r} is ambiguous")

    for entry in pycountry.countries:
        country = Country(entry.alpha_3, UN_NAMES.get(entry.alpha_3, entry.name))
        by_iso3[entry.alpha_3] = country
        names = [entry.alpha_2, entry.alpha_3, entry.name, country.name]
        names += [getattr(entry, attr, "") for attr in ("official_name", "common_name")]
        # "Korea, Republic of" is also written "Republic of Korea".
        if ", " in entry.name:
            head, _, tail = entry.name.partition(", ")
            names.append(f"{tail} {head}")
        for name in names:
            if name:
                add(name, country)
    for name, iso3 in ALIASES.items():
        add(name, by_iso3[iso3])
    return by_iso3, by_key


_BY_ISO3, _BY_KEY = _build_index()


@lru_cache(maxsize=8192)
def _lookup(value: str) -> Country | None:
    return _BY_KEY.get(_key(value))


def resolve_country(value: str) -> Country:
    """Return the country named by an ISO3/ISO2 code or any known spelling of its name."""
    country = _lookup(value) if isinstance(value, str) else None
    if country is None:
        raise UnknownCountry(value)
    return country


def country_by_iso3(iso3: str) -> Country:
    """Return the country with this ISO 3166-1 alpha-3 code."""
    country = _BY_ISO3.get(iso3.strip().upper()) if isinstance(iso3, str) else None
    if country is None:
        raise UnknownCountry(iso3)
    return country


def is_country(value: str) -> bool:
    """Tell whether the value names a known country."""
    return isinstance(value, str) and _lookup(value) is not None
