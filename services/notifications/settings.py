"""Notifications settings (UPR_NOTIFICATIONS_*, UPR_SMTP_*, UPR_SMS_* plus the shared ones)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from shared.settings import BaseServiceSettings


class NotificationsSettings(BaseServiceSettings):
    database_url: str = Field(
        "sqlite+aiosqlite:///./data/notifications.db",
        validation_alias="UPR_NOTIFICATIONS_DATABASE_URL",
    )
    port: int = Field(8003, validation_alias="UPR_NOTIFICATIONS_PORT")
    public_url: str = Field(
        "http://127.0.0.1:8003",
        validation_alias="UPR_NOTIFICATIONS_PUBLIC_URL",
        description="Base of the links in messages (unsubscribe, preferences, confirm)",
    )
    web_url: str = Field(
        "http://127.0.0.1:8000",
        validation_alias="UPR_WEB_URL",
        description="Base of links to recommendation pages in messages",
    )
    secret_key: SecretStr = Field(
        SecretStr("dev-notifications-secret"),
        validation_alias="UPR_NOTIFICATIONS_SECRET_KEY",
        description="Signs unsubscribe, preference and confirmation links",
    )
    # E-mail
    smtp_host: str = Field("127.0.0.1", validation_alias="UPR_SMTP_HOST")
    smtp_port: int = Field(2525, validation_alias="UPR_SMTP_PORT")
    smtp_username: str | None = Field(None, validation_alias="UPR_SMTP_USERNAME")
    smtp_password: SecretStr | None = Field(None, validation_alias="UPR_SMTP_PASSWORD")
    smtp_starttls: Literal["auto", "always", "never"] = Field(
        "auto", validation_alias="UPR_SMTP_STARTTLS"
    )
    smtp_timeout_s: float = Field(10.0, validation_alias="UPR_SMTP_TIMEOUT_S")
    mail_from: str = Field(
        "UPR Tracker <alerts@upr-tracker.local>", validation_alias="UPR_MAIL_FROM"
    )
    email_rate_per_s: float = Field(200.0, validation_alias="UPR_EMAIL_RATE_PER_S")
    smtp_connections: int = Field(
        1,
        ge=1,
        le=32,
        validation_alias="UPR_SMTP_CONNECTIONS",
        description="SMTP sessions kept open and used at once (each one reused)",
    )
    # SMS
    sms_provider: Literal["gateway", "twilio"] = Field(
        "gateway", validation_alias="UPR_SMS_PROVIDER"
    )
    sms_gateway_url: str = Field(
        "http://127.0.0.1:8025/sms", validation_alias="UPR_SMS_GATEWAY_URL"
    )
    sms_gateway_secret: SecretStr = Field(
        SecretStr("dev-sms-secret"), validation_alias="UPR_SMS_GATEWAY_SECRET"
    )
    twilio_base_url: str = Field("https://api.twilio.com", validation_alias="UPR_TWILIO_BASE_URL")
    twilio_account_sid: str | None = Field(None, validation_alias="UPR_TWILIO_ACCOUNT_SID")
    twilio_auth_token: SecretStr | None = Field(None, validation_alias="UPR_TWILIO_AUTH_TOKEN")
    sms_from: str = Field("UPRTracker", validation_alias="UPR_SMS_FROM")
    sms_rate_per_s: float = Field(1.0, validation_alias="UPR_SMS_RATE_PER_S")
    sms_max_segments: int = Field(3, validation_alias="UPR_SMS_MAX_SEGMENTS")
    # Delivery
    max_attempts: int = Field(6, validation_alias="UPR_DELIVERY_MAX_ATTEMPTS")
    retry_base_s: float = Field(5.0, validation_alias="UPR_DELIVERY_RETRY_BASE_S")
    retry_max_s: float = Field(3600.0, validation_alias="UPR_DELIVERY_RETRY_MAX_S")
    dispatch_batch: int = Field(200, validation_alias="UPR_DISPATCH_BATCH")
    dispatch_interval_s: float = Field(1.0, validation_alias="UPR_DISPATCH_INTERVAL_S")
    claim_lease_s: float = Field(120.0, validation_alias="UPR_CLAIM_LEASE_S")
    reminder_lead_days: list[int] = Field([30, 7, 1], validation_alias="UPR_REMINDER_LEAD_DAYS")
    escalation_after_days: list[int] = Field(
        [7, 21],
        validation_alias="UPR_ESCALATION_AFTER_DAYS",
        description="Days overdue before escalating to the head of the body, then the coordinator",
    )
    digest_hour: int = Field(8, ge=0, le=23, validation_alias="UPR_DIGEST_HOUR")
    webhook_timeout_s: float = Field(10.0, validation_alias="UPR_WEBHOOK_TIMEOUT_S")
    webhook_allow_private_networks: bool | None = Field(
        None,
        validation_alias="UPR_WEBHOOK_ALLOW_PRIVATE_NETWORKS",
        description=(
            "Let webhooks reach loopback, private and link-local addresses; unset means only "
            "in the dev and test environments"
        ),
    )

    @property
    def webhooks_may_reach_private_networks(self) -> bool:
        """Whether a webhook may target a non-public address (no SSRF guard)."""
        if self.webhook_allow_private_networks is not None:
            return self.webhook_allow_private_networks
        return self.environment in ("dev", "test")
