"""Web settings (UPR_WEB_* plus the shared UPR_* ones); the web service keeps no database."""

from __future__ import annotations

from pydantic import Field

from shared.settings import BaseServiceSettings


class WebSettings(BaseServiceSettings):
    port: int = Field(8000, validation_alias="UPR_WEB_PORT")
    public_url: str = Field(
        "http://127.0.0.1:8000",
        validation_alias="UPR_WEB_URL",
        description="Base of the absolute links in feeds and badges (the same UPR_WEB_URL "
        "notifications puts in its messages)",
    )
    catalog_url: str = Field("http://127.0.0.1:8001", validation_alias="UPR_WEB_CATALOG_URL")
    monitoring_url: str = Field("http://127.0.0.1:8002", validation_alias="UPR_WEB_MONITORING_URL")
    notifications_url: str = Field(
        "http://127.0.0.1:8003", validation_alias="UPR_WEB_NOTIFICATIONS_URL"
    )
    upstream_timeout_s: float = Field(10.0, validation_alias="UPR_WEB_UPSTREAM_TIMEOUT_S")
    page_size: int = Field(20, ge=1, le=100, validation_alias="UPR_WEB_PAGE_SIZE")
    feed_size: int = Field(20, ge=1, le=100, validation_alias="UPR_WEB_FEED_SIZE")
    cache_max_age_s: int = Field(
        300, ge=0, validation_alias="UPR_WEB_CACHE_MAX_AGE_S", description="Feeds and badges"
    )
