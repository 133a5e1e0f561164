"""Monitoring settings (UPR_MONITORING_* plus the shared UPR_* ones)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from shared.settings import BaseServiceSettings


class MonitoringSettings(BaseServiceSettings):
    database_url: str = Field(
        "sqlite+aiosqlite:///./data/monitoring.db", validation_alias="UPR_MONITORING_DATABASE_URL"
    )
    port: int = Field(8002, validation_alias="UPR_MONITORING_PORT")
    upload_dir: Path = Field(
        Path("./data/evidence"),
        validation_alias="UPR_MONITORING_UPLOAD_DIR",
        description="Where uploaded evidence files are stored, named by their SHA-256",
    )
    max_upload_bytes: int = Field(
        20 * 1024 * 1024, validation_alias="UPR_MONITORING_MAX_UPLOAD_BYTES"
    )
    allowed_upload_types: list[str] = Field(
        [
            "application/pdf",
            "image/png",
            "image/jpeg",
            "text/plain",
            "text/csv",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ],
        validation_alias="UPR_MONITORING_ALLOWED_UPLOAD_TYPES",
    )
