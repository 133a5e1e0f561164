"""Catalog settings (UPR_CATALOG_* plus the shared UPR_* ones)."""

from __future__ import annotations

from pydantic import Field

from shared.settings import BaseServiceSettings


class CatalogSettings(BaseServiceSettings):
    database_url: str = Field(
        "sqlite+aiosqlite:///./data/catalog.db", validation_alias="UPR_CATALOG_DATABASE_URL"
    )
    port: int = Field(8001, validation_alias="UPR_CATALOG_PORT")
    seed_demo: bool = Field(
        False,
        validation_alias="UPR_CATALOG_SEED_DEMO",
        description="Import the Cambodia demo set at start when the catalog is empty",
    )
