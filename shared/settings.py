"""Settings every service shares; each service extends BaseServiceSettings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset(
    {
        "",
        "change-me",
        "changeme",
        "secret",
        "dev-admin-key",
        "dev-notifications-secret",
        "dev-sms-secret",
        "admin",
        "password",
        "test",
    }
)
DEV_ADMIN_API_KEY = "dev-admin-key"


class BaseServiceSettings(BaseSettings):
    """Configuration read from the environment (prefix UPR_) and an optional .env file."""

    model_config = SettingsConfigDict(
        env_prefix="UPR_", env_file=".env", extra="ignore", populate_by_name=True
    )

    environment: Literal["dev", "test", "production"] = "dev"
    nats_url: str = "nats://127.0.0.1:4222"
    nats_namespace: str = Field(
        "upr",
        pattern=r"^[a-z][a-z0-9_]{0,30}$",
        description="Subject prefix and stream name; keep 'upr' outside tests.",
    )
    nats_duplicate_window_s: float = 600.0
    nats_stream_max_bytes: int = -1
    nats_stream_replicas: int = Field(
        1, ge=1, le=5, description="JetStream replicas of the streams: 3 on a three-node cluster"
    )
    admin_api_key: SecretStr | None = None
    host: str = "127.0.0.1"
    log_level: str = "INFO"
    max_body_bytes: int = 64 * 1024 * 1024
    rate_limit_enabled: bool | None = Field(
        None, description="Rate limits on writes; unset means on, except in the test environment"
    )
    rate_limit_writes: str = Field("600/minute", description="Writes per key and per address")
    rate_limit_subscribe: str = Field(
        "5/minute",
        description="Self-service subscribe and confirm requests per client address and per "
        "destination (e-mail address or phone number)",
    )
    rate_limit_storage_url: str = Field(
        "memory://", description="limits storage: memory:// (per process) or redis://host:port"
    )
    outbox_batch_size: int = 500
    outbox_poll_interval_s: float = 1.0
    consumer_max_deliver: int = 6
    consumer_backoff_s: list[float] = [1.0, 5.0, 15.0, 60.0, 300.0]
    consumer_ack_wait_s: float = 30.0
    migrate_on_start: bool = True

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> BaseServiceSettings:
        if self.environment == "dev":
            if self.admin_api_key is None or not self.admin_api_key.get_secret_value():
                self.admin_api_key = SecretStr(DEV_ADMIN_API_KEY)
            return self
        for name, value in self._secrets().items():
            if value is not None and value.get_secret_value().strip().lower() in (
                PLACEHOLDER_SECRETS
            ):
                raise ValueError(
                    f"{name} holds a placeholder value; set a real secret "
                    f"(environment is {self.environment!r})"
                )
        return self

    def _secrets(self) -> dict[str, SecretStr | None]:
        """Secret settings by their environment variable name."""
        return {
            (field.validation_alias if isinstance(field.validation_alias, str) else None)
            or f"UPR_{name.upper()}": getattr(self, name)
            for name, field in type(self).model_fields.items()
            if field.annotation in (SecretStr, SecretStr | None)
        }
