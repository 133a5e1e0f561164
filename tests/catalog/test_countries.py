"""Country resolution: ISO codes, pycountry names, UN and UPR Info spellings."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest

from services.catalog.countries import (
    Country,
    UnknownCountry,
    country_by_iso3,
    is_country,
    resolve_country,
)

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
LEGACY = SHARED_DATA / "upr_info_legacy_2014.csv"

UPR_INFO_SPELLINGS = {
    "Palestine": "PSE",
    "Macedonia FYR": "MKD",
    "Republic of Korea": "KOR",
    "Turkey": "TUR",
    "Democratic Republic of Congo": "COD",
    "Republic of Congo": "COG",
    "Cote d'Ivoire": "CIV",
    "DPR Korea": "PRK",
    "Trinidad & Tobago": "TTO",
    "Holy See": "VAT",
    "Cape Verde": "CPV",
    "Bosnia & Herzegovina": "BIH",
    "Swaziland": "SWZ",
    "Antigua & Barbuda": "ATG",
    "Guinea Bissau": "GNB",
    "Micronesia": "FSM",
    "Sao Tome & Principe": "STP",
    "St Kitts & Nevis": "KNA",
    "St Lucia": "LCA",
    "St Vincent & the Grenadines": "VCT",
}

UN_SPELLINGS = {
    "Venezuela (Bolivarian Republic of)": "VEN",
    "Iran (Islamic Republic of)": "IRN",
    "State of Palestine": "PSE",
    "Democratic People's Republic of Korea": "PRK",
    "Democratic People\u2019s Republic of Korea": "PRK",
    "United Kingdom of Great Britain and Northern Ireland": "GBR",
    "Bolivia (Plurinational State of)": "BOL",
    "Republic of Moldova": "MDA",
    "United Republic of Tanzania": "TZA",
    "Lao People's Democratic Republic": "LAO",
    "Syrian Arab Republic": "SYR",
    "Russian Federation": "RUS",
    "Viet Nam": "VNM",
    "Czechia": "CZE",
    "Czech Republic": "CZE",
    "Türkiye": "TUR",
    "Democratic Republic of the Congo": "COD",
    "Micronesia (Federated States of)": "FSM",
    "United States of America": "USA",
    "The former Yugoslav Republic of Macedonia": "MKD",
    "Libyan Arab Jamahiriya": "LBY",
}


@pytest.mark.parametrize(("name", "iso3"), sorted(UPR_INFO_SPELLINGS.items()))
def test_upr_info_spellings(name: str, iso3: str) -> None:
    assert resolve_country(name).iso3 == iso3


@pytest.mark.parametrize(("name", "iso3"), sorted(UN_SPELLINGS.items()))
def test_un_spellings(name: str, iso3: str) -> None:
    assert resolve_country(name).iso3 == iso3


@pytest.mark.parametrize(
    ("value", "iso3"),
    [
        ("FRA", "FRA"),
        ("fra", "FRA"),
        ("FR", "FRA"),
        ("kh", "KHM"),
        ("France", "FRA"),
        ("French Republic", "FRA"),
        ("  united   KINGDOM ", "GBR"),
        ("UK", "GBR"),
        ("cote d\u2019ivoire", "CIV"),
        ("CÔTE D'IVOIRE", "CIV"),
        ("turkiye", "TUR"),
        ("Korea, Republic of", "KOR"),
        ("Saint Kitts and Nevis", "KNA"),
        ("St. Lucia", "LCA"),
        ("Guinea-Bissau", "GNB"),
        ("Vietnam", "VNM"),
        ("Eswatini", "SWZ"),
        ("North Macedonia", "MKD"),
    ],
)
def test_codes_and_loose_spellings(value: str, iso3: str) -> None:
    assert resolve_country(value).iso3 == iso3


@pytest.mark.parametrize(
    ("iso3", "name"),
    [
        ("TUR", "Türkiye"),
        ("KOR", "Republic of Korea"),
        ("VEN", "Venezuela (Bolivarian Republic of)"),
        ("PSE", "State of Palestine"),
        ("VAT", "Holy See"),
        ("GBR", "United Kingdom of Great Britain and Northern Ireland"),
        ("FRA", "France"),
        ("KHM", "Cambodia"),
    ],
)
def test_name_is_the_un_short_name(iso3: str, name: str) -> None:
    assert country_by_iso3(iso3) == Country(iso3, name)
    assert resolve_country(name) == Country(iso3, name)


@pytest.mark.parametrize("value", ["(Unknown)", "Atlantis", "Kosovo", "", "   ", "Korea", "XX"])
def test_unknown_values_raise(value: str) -> None:
    with pytest.raises(UnknownCountry) as info:
        resolve_country(value)
    assert str(info.value) == f"unknown country {value!r}"
    assert isinstance(info.value, ValueError)
    assert not is_country(value)


def test_unknown_message_names_the_input() -> None:
    with pytest.raises(UnknownCountry, match=r"^unknown country 'Atlantis'$"):
        resolve_country("Atlantis")


def test_country_by_iso3() -> None:
    assert country_by_iso3("khm").iso3 == "KHM"
    with pytest.raises(UnknownCountry, match="XKX"):
        country_by_iso3("XKX")
    with pytest.raises(UnknownCountry):
        country_by_iso3("France")  # a name is not a code


def test_is_country() -> None:
    assert is_country("Holy See")
    assert is_country("PSE")
    assert not is_country("(Unknown)")


def test_bulk_lookups_are_cached_and_fast() -> None:
    names = list(UPR_INFO_SPELLINGS) + list(UN_SPELLINGS)
    started = time.perf_counter()
    for i in range(76_000):
        resolve_country(names[i % len(names)])
    assert time.perf_counter() - started < 1.0


@pytest.mark.skipif(not LEGACY.exists(), reason=f"reference data not found at {SHARED_DATA}")
def test_every_legacy_name_resolves_except_unknown() -> None:
    with LEGACY.open(encoding="utf-8", newline="") as f:
        names = {name for row in csv.DictReader(f) for name in (row["SuR"], row["RS"])}
    unresolved = {name for name in names if not is_country(name)}
    assert unresolved == {"(Unknown)"}
    assert len(names) == 196
