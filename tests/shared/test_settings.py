"""Settings refuse placeholder secrets outside dev."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.catalog.settings import CatalogSettings
from shared.settings import DEV_ADMIN_API_KEY


def test_dev_gets_a_bootstrap_key() -> None:
    settings = CatalogSettings(environment="dev", admin_api_key=None)
    assert settings.admin_api_key is not None
    assert settings.admin_api_key.get_secret_value() == DEV_ADMIN_API_KEY


@pytest.mark.parametrize("secret", ["change-me", "dev-admin-key", "", "  secret "])
def test_production_refuses_placeholders(secret: str) -> None:
    with pytest.raises(ValidationError, match="UPR_ADMIN_API_KEY"):
        CatalogSettings(environment="production", admin_api_key=secret)


def test_env_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPR_CATALOG_DATABASE_URL", "sqlite+aiosqlite:///x.db")
    monkeypatch.setenv("UPR_NATS_URL", "nats://example:4222")
    monkeypatch.setenv("UPR_ENVIRONMENT", "production")
    monkeypatch.setenv("UPR_ADMIN_API_KEY", "a-real-long-random-key")
    settings = CatalogSettings()
    assert settings.database_url == "sqlite+aiosqlite:///x.db"
    assert settings.nats_url == "nats://example:4222"
    assert settings.admin_api_key is not None
    assert "a-real" not in repr(settings)
