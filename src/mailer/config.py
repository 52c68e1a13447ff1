"""One validated settings object, read from the environment (12-factor)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal, Self, TypeAlias
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MAILJET_URL = "https://api.mailjet.com"
DEMO_SMTP_PORT = 2525
DEMO_WEBHOOK_NETWORKS = "127.0.0.0/8, ::1/128"
"""What `mailer run` lets webhooks reach when MAILER_WEBHOOK_ALLOWED_NETWORKS is unset in
the demo: receivers on this machine."""

Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(value: str) -> tuple[Network, ...]:
    """Comma- or space-separated CIDRs (``127.0.0.0/8, ::1``); raise ValueError naming a bad
    one."""
    networks = []
    for item in value.replace(",", " ").split():
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not a network (CIDR such as 127.0.0.0/8)") from None
    return tuple(networks)


def default_data_dir() -> Path:
    """Where the embedded PostgreSQL keeps its data when no `DATABASE_URL` is set.

    As root, the embedded server runs as a separate system user and opens read/traverse
    permission on every parent folder of its data directory; `/var/lib/mailer` has only
    world-traversable parents already, so nothing private gets opened. Other users keep the
    data in their own XDG data directory and no permission is changed.
    """
    import os

    if os.geteuid() == 0:
        return Path("/var/lib/mailer")
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "mailer"


class Settings(BaseSettings):
    """Everything Mailer can be configured with (see the README's configuration table)."""

    model_config = SettingsConfigDict(
        env_prefix="MAILER_", extra="ignore", frozen=True, populate_by_name=True
    )

    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "MAILER_DATABASE_URL")
    )
    mj_apikey_public: str | None = Field(default=None, validation_alias="MJ_APIKEY_PUBLIC")
    mj_apikey_private: SecretStr | None = Field(default=None, validation_alias="MJ_APIKEY_PRIVATE")
    mailjet_api_url: str = Field(default=DEFAULT_MAILJET_URL, validation_alias="MAILJET_API_URL")
    # Behind PgBouncer in transaction mode (docs/deployment.md): where the worker LISTENs
    # (a connection that keeps its session), and no named prepared statements.
    listen_database_url: str | None = None
    statement_cache_size: int = Field(default=100, ge=0, le=10_000)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    data_dir: Path = Field(default_factory=default_data_dir)
    log_level: str = Field(default="info", pattern="^(debug|info|warning|error)$")
    log_format: str = Field(default="text", pattern="^(text|json)$")
    log_summary_seconds: float = Field(default=60.0, ge=0)

    worker_concurrency: int = Field(default=16, ge=1, le=512, description="Mailjet calls in flight")
    claim_batch: int = Field(default=500, ge=1, le=5000)
    lease_seconds: float = Field(default=120.0, ge=5)
    poll_interval: float = Field(default=2.0, gt=0, le=60)
    mailjet_timeout: float = Field(default=30.0, gt=0, le=300)
    # The account's ceiling on Mailjet calls per second, shared by every worker (None: none).
    mailjet_max_calls_per_second: float | None = Field(default=None, gt=0, le=10_000)
    max_body_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    key_cache_seconds: float = Field(default=10.0, ge=0, le=300)
    event_silence_after: float = Field(default=900.0, gt=0)
    lookup_grace_seconds: float = Field(default=30.0, ge=0, le=600)
    # Opens and clicks this soon after delivery, with a burst of distinct links clicked in
    # the same second, are a scanner's (tracking/engagement.py); 0 turns timing off.
    scanner_click_seconds: float = Field(default=10.0, ge=0, le=3600)
    # Prometheus metrics: counted and served at the API's /metrics unless off; a worker
    # serves its own on metrics_port (docs/operations.md, "Metrics").
    metrics: bool = True
    metrics_port: int | None = Field(default=None, ge=0, le=65535)

    # Retention (mailer.lifecycle.retention): days kept; an app may override the first two.
    retention_bodies_days: int = Field(default=30, ge=1, le=36_500)
    retention_jobs_days: int = Field(default=400, ge=1, le=36_500)
    retention_callbacks_days: int = Field(default=30, ge=1, le=36_500)
    retention_webhook_attempts_days: int = Field(default=30, ge=1, le=36_500)
    retention_interval_seconds: float = Field(default=600.0, ge=0)

    # Seals webhook secrets at rest (mailer.vault): Fernet keys, the newest first.
    secret_key: SecretStr | None = None

    events_user: str | None = None
    events_password: SecretStr | None = None

    # SMTP submission (`mailer smtp`, and `mailer run` where `smtp_listen_port` says).
    smtp_port: Annotated[int, Field(ge=0, le=65535)] | Literal["off"] | None = None
    smtp_host: str | None = None
    smtp_tls_cert: Path | None = None
    smtp_tls_key: Path | None = None
    smtp_allow_insecure_auth: bool = False
    smtp_max_message_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    smtp_max_recipients: int = Field(default=50, ge=1, le=50)
    smtp_timeout: float = Field(default=300.0, gt=0, le=3600)

    # Networks webhooks may reach besides public addresses (CIDRs); unset: none, except in
    # the `mailer run` demo (DEMO_WEBHOOK_NETWORKS).
    webhook_allowed_networks: str | None = None

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _check_networks(cls, value: str | None) -> str | None:
        if value is not None:
            parse_networks(value)
        return value

    @property
    def webhook_networks(self) -> tuple[Network, ...]:
        """The networks of MAILER_WEBHOOK_ALLOWED_NETWORKS, parsed."""
        return parse_networks(self.webhook_allowed_networks or "")

    @model_validator(mode="after")
    def _check_consistency(self) -> Self:
        if (self.mj_apikey_public is None) != (self.mj_apikey_private is None):
            raise ValueError("set both MJ_APIKEY_PUBLIC and MJ_APIKEY_PRIVATE, or neither")
        if self.database_url is not None and not self.database_url.startswith(
            ("postgresql://", "postgres://")
        ):
            raise ValueError("DATABASE_URL must start with postgresql:// or postgres://")
        if self.listen_database_url is not None and not self.listen_database_url.startswith(
            ("postgresql://", "postgres://")
        ):
            raise ValueError(
                "MAILER_LISTEN_DATABASE_URL must start with postgresql:// or postgres://"
            )
        if not self.mailjet_api_url.startswith(("http://", "https://")):
            raise ValueError("MAILJET_API_URL must be an http(s) URL")
        if (self.smtp_tls_cert is None) != (self.smtp_tls_key is None):
            raise ValueError("set both MAILER_SMTP_TLS_CERT and MAILER_SMTP_TLS_KEY, or neither")
        if self.lease_seconds <= self.mailjet_timeout + 5:
            raise ValueError(
                "MAILER_LEASE_SECONDS must exceed MAILER_MAILJET_TIMEOUT by more than 5 s, "
                "so that a live worker always records its call before its lease ends"
            )
        return self

    def describe(self) -> dict[str, object]:
        """What is configured, for the start-up log line: no secrets, no credentials."""
        return {
            "database": "embedded" if self.database_url is None else safe_dsn(self.database_url),
            "listen_database": None
            if self.listen_database_url is None
            else safe_dsn(self.listen_database_url),
            "statement_cache_size": self.statement_cache_size,
            "mailjet": "simulator" if self.uses_simulator else self.mailjet_api_url,
            "worker_concurrency": self.worker_concurrency,
            "claim_batch": self.claim_batch,
            "lease_seconds": self.lease_seconds,
            "poll_interval": self.poll_interval,
            "mailjet_timeout": self.mailjet_timeout,
            "log_level": self.log_level,
            "metrics": "on" if self.metrics else "off",
        }

    @property
    def uses_simulator(self) -> bool:
        """True when no Mailjet keys are configured: the built-in simulator stands in."""
        return self.mj_apikey_public is None

    @property
    def smtp_listen_port(self) -> int | None:
        """Where `mailer run` takes SMTP submissions: MAILER_SMTP_PORT; unset, 2525 in the
        demo (the simulator stands in for Mailjet) and off in production; None when off."""
        if self.smtp_port == "off":
            return None
        if self.smtp_port is None:
            return DEMO_SMTP_PORT if self.uses_simulator else None
        return self.smtp_port


def safe_dsn(dsn: str) -> str:
    """`host:port/database` of a PostgreSQL URL: what to show in logs and errors (never the
    user name or password)."""
    parts = urlsplit(dsn)
    try:
        port = parts.port
    except ValueError:
        port = None
    host = parts.hostname or "localhost"
    if not parts.hostname and parts.query:  # a Unix socket given as ?host=/run/postgresql
        host = dict(p.partition("=")[::2] for p in parts.query.split("&")).get("host", host)
    return f"{host}:{port or 5432}{parts.path or '/'}"


class ConfigError(Exception):
    """Settings could not be loaded; the message names each wrong value."""


def load_settings(**overrides: object) -> Settings:
    """Read and validate the settings, turning pydantic's errors into one readable message."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(part) for part in err["loc"]) or "settings"
            name = _env_name(loc)
            lines.append(f"  {name}: {err['msg']}")
        raise ConfigError("invalid configuration:\n" + "\n".join(lines)) from None


def _env_name(field: str) -> str:
    special = {
        "database_url": "DATABASE_URL",
        "mj_apikey_public": "MJ_APIKEY_PUBLIC",
        "mj_apikey_private": "MJ_APIKEY_PRIVATE",
        "mailjet_api_url": "MAILJET_API_URL",
    }
    if field in special:
        return special[field]
    if field == "settings":
        return field
    return "MAILER_" + field.upper()
