"""Message catalogues (one JSON file per language under locales/) and language choice."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

LOCALES = Path(__file__).parent / "locales"
DEFAULT = "en"
COOKIE = "lang"


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
