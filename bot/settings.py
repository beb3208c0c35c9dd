"""The service's settings: one pydantic-settings class read from the environment (and ``.env``).

Every field is documented in ``.env.example``; the environment names are part of the deployment
contract (operators and docs rely on them). Nothing is read at import time: ``main`` builds one
:class:`Settings` and passes it in.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MB = 1024 * 1024

# Telegram accepts 1-256 characters A-Z, a-z, 0-9, _ and - as a webhook secret token.
_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")


class Settings(BaseSettings):
    """All settings of ``deepfake-bot run``. Field ``foo_bar`` is read from ``FOO_BAR``."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        case_sensitive=False,
        # Validation errors are printed; their inputs would include the tokens.
        hide_input_in_errors=True,
    )

    # --- Telegram ---------------------------------------------------------------------------
    telegram_token: SecretStr | None = None
    telegram_api_url: str = "https://api.telegram.org/bot"
    telegram_file_url: str = "https://api.telegram.org/file/bot"
    telegram_max_download_bytes: int = Field(default=20 * MB, gt=0)
    telegram_mode: Literal["polling", "webhook"] = "polling"
    telegram_poll_timeout_s: int = Field(default=30, ge=0, le=50)
    telegram_webhook_url: str | None = None
    telegram_webhook_secret: SecretStr | None = None
    telegram_webhook_listen: str = "0.0.0.0"
    telegram_webhook_port: int = Field(default=8443, ge=0, le=65535)
    telegram_concurrent_updates: int = Field(default=64, ge=1)
    telegram_album_wait_s: float = Field(default=1.5, gt=0, le=30)
    telegram_flood_max_retries: int = Field(default=3, ge=0)
    telegram_flood_max_wait_s: float = Field(default=60.0, ge=0)
    telegram_updates_file: Path | None = None  # handled update ids, kept across restarts
    # A video check running this long gets a progress message, edited at most this often.
    telegram_progress_after_s: float = Field(default=3.0, ge=0)
    telegram_progress_every_s: float = Field(default=2.0, ge=0)

    # --- Discord -----------------------------------------------------------------------------
    discord_token: SecretStr | None = None
    discord_api_url: str = "https://discord.com/api/v10"
    discord_gateway_url: str = "wss://gateway.discord.gg/"
    discord_test_guild: int | None = Field(default=None, gt=0)
    discord_sync_commands: bool = True
    discord_message_content: bool = True
    discord_settings_db: Path = Path("data/discord.sqlite3")
    discord_max_images: int = Field(default=10, ge=1, le=10)
    discord_url_checks: bool = True
    discord_shard_count: int | Literal["auto"] | None = None
    discord_shard_ids: list[int] | None = None
    discord_connect_timeout_s: float = Field(default=60.0, gt=0)
    discord_guild_ready_timeout_s: float = Field(default=2.0, ge=0)
    discord_max_ratelimit_wait_s: float = Field(default=30.0, gt=0)
    # With REDIS_URL, shard processes take turns to IDENTIFY (a Redis lock per rate-limit
    # bucket): Discord's window, and the bucket count when /gateway/bot cannot say (None: ask).
    discord_identify_interval_s: float = Field(default=5.0, ge=0.05, le=60)
    discord_identify_concurrency: int | None = Field(default=None, ge=1)

    # --- detector -----------------------------------------------------------------------------
    deepfake_bot_weights: Path | None = None
    detector_family: str | None = None
    detector_sha256: str | None = None
    detector_precision: Literal["auto", "fp32", "bf16"] = "auto"
    detector_threads: int | None = Field(default=None, ge=1)
    # Where the network runs: here, or on an Open Inference Protocol V2 server (the crops travel;
    # decoding and face finding stay here). docs/remote-detector.md is the wire contract.
    detector_backend: Literal["local", "remote"] = "local"
    detector_url: str | None = None
    detector_model: str = Field(default="deepfake-xception", min_length=1)
    detector_timeout_s: float = Field(default=30.0, gt=0)
    detector_connect_timeout_s: float = Field(default=5.0, gt=0)
    detector_retries: int = Field(default=2, ge=0, le=10)
    detector_retry_backoff_s: float = Field(default=0.2, ge=0)
    detector_start_timeout_s: float = Field(default=60.0, gt=0)
    detector_v2_binary: bool = True
    max_image_bytes: int = Field(default=25 * MB, gt=0)
    max_image_pixels: int = Field(default=40_000_000, gt=0)
    max_faces: int = Field(default=8, ge=1, le=32)
    # Videos and animations (GIF, animated WebP, video notes): judged per face track.
    video_enabled: bool = True
    max_video_bytes: int = Field(default=20 * MB, gt=0)
    max_video_seconds: float = Field(default=120.0, gt=0)
    max_video_pixels: int = Field(default=1920 * 1080, gt=0)
    video_frames: int = Field(default=32, ge=1, le=128)
    video_decode_timeout_s: float = Field(default=30.0, gt=0)
    video_weight: int = Field(default=4, ge=1)

    # --- checks (shared by every platform) -----------------------------------------------------
    max_concurrent_checks: int = Field(default=8, ge=1)
    check_queue_size: int = Field(default=32, ge=0)
    rate_limit_per_minute: int = Field(default=10, ge=0)
    download_timeout_s: float = Field(default=60.0, gt=0)
    analysis_timeout_s: float = Field(default=120.0, gt=0)
    chat_settings_file: Path | None = None

    # --- several replicas (optional extra [redis]) ---------------------------------------------
    # Shared by every replica: Telegram update de-duplication and per-user rate limits, the
    # Discord identify lock and per-server settings. Unset: each process keeps them itself.
    redis_url: SecretStr | None = None  # redis://[:password@]host:port/db (may hold a password)
    redis_prefix: str = Field(default="deepfake-bot:", min_length=1, max_length=64)

    # --- process --------------------------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    shutdown_grace_s: float = Field(default=25.0, gt=0)
    http_enabled: bool = True
    http_host: str = "0.0.0.0"
    http_port: int = Field(default=8080, ge=0, le=65535)
    # --- web page, HTTP API and /metrics (on HTTP_HOST:HTTP_PORT) ------------------------------
    web_enabled: bool = True
    http_api_token: SecretStr | None = None
    # Behind a reverse proxy: its addresses or networks, comma-separated. Then every request
    # (but /healthz, /readyz, /metrics) must come through it with X-Forwarded-For, and the
    # client address it names is the one rate limits count. Empty: the peer address counts.
    http_trusted_proxies: str = ""

    @field_validator("http_trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        for item in filter(None, (v.strip() for v in value.split(","))):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        return value

    @property
    def trusted_proxies(self) -> tuple[str, ...]:
        return tuple(filter(None, (v.strip() for v in self.http_trusted_proxies.split(","))))

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator(
        "telegram_token", "discord_token", "telegram_webhook_secret", "http_api_token",
        "redis_url",
        mode="before",
    )
    @classmethod
    def _strip_secret(cls, value: object) -> object:
        # A token pasted with a trailing newline or blank means "not set", not a bad token.
        if isinstance(value, str):
            value = value.strip()
            return value or None
        return value

    @field_validator("telegram_api_url", "telegram_file_url", "discord_api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if urlsplit(value).scheme not in {"http", "https"}:
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            scheme = urlsplit(value.get_secret_value()).scheme
            if scheme not in {"redis", "rediss", "unix"}:
                raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("detector_url")
    @classmethod
    def _detector_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in {"http", "https"} or not parts.netloc:
                raise ValueError("must be an http(s) URL, e.g. http://gpu-1:8000")
        return value

    @model_validator(mode="after")
    def _remote_detector_complete(self) -> Settings:
        if self.detector_backend == "remote" and not self.detector_url:
            raise ValueError(
                "DETECTOR_BACKEND=remote needs DETECTOR_URL (the V2 inference server, e.g. "
                "http://gpu-1:8000)"
            )
        return self

    @field_validator("discord_gateway_url")
    @classmethod
    def _ws_url(cls, value: str) -> str:
        if urlsplit(value).scheme not in {"ws", "wss"}:
            raise ValueError("must be a ws(s) URL")
        return value

    @field_validator("discord_shard_count")
    @classmethod
    def _shard_count(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and value < 1:
            raise ValueError("must be 'auto' or a number of shards (1 or more)")
        return value

    @model_validator(mode="after")
    def _shards_consistent(self) -> Settings:
        ids = self.discord_shard_ids
        if ids is None:
            return self
        count = self.discord_shard_count
        if not isinstance(count, int):
            raise ValueError("DISCORD_SHARD_IDS needs a numeric DISCORD_SHARD_COUNT")
        if not ids or len(set(ids)) != len(ids) or any(not 0 <= i < count for i in ids):
            raise ValueError(
                f"DISCORD_SHARD_IDS: distinct shard numbers from 0 to {count - 1}, e.g. [0, 1]"
            )
        return self

    @model_validator(mode="after")
    def _webhook_complete(self) -> Settings:
        if self.telegram_mode != "webhook":
            return self
        if not self.telegram_webhook_url:
            raise ValueError("TELEGRAM_MODE=webhook needs TELEGRAM_WEBHOOK_URL")
        if urlsplit(self.telegram_webhook_url).scheme not in {"http", "https"}:
            raise ValueError("TELEGRAM_WEBHOOK_URL must be an http(s) URL")
        secret = self.telegram_webhook_secret
        if secret is None:
            raise ValueError("TELEGRAM_MODE=webhook needs TELEGRAM_WEBHOOK_SECRET")
        if not _SECRET_TOKEN.fullmatch(secret.get_secret_value()):
            raise ValueError(
                "TELEGRAM_WEBHOOK_SECRET: 1-256 characters of A-Z, a-z, 0-9, _ and - only"
            )
        return self

    @property
    def telegram_webhook_path(self) -> str:
        """The path the webhook server listens on: the path of ``TELEGRAM_WEBHOOK_URL``."""
        return urlsplit(self.telegram_webhook_url or "").path or "/"

    def secrets(self) -> list[str]:
        """Every secret value that is set, for log redaction."""
        out = []
        for secret in (
            self.telegram_token, self.discord_token, self.telegram_webhook_secret,
            self.http_api_token,
        ):
            if secret is not None and secret.get_secret_value():
                out.append(secret.get_secret_value())
        if self.redis_url is not None:  # the URL, and its password wherever it shows alone
            url = self.redis_url.get_secret_value()
            out.append(url)
            password = urlsplit(url).password
            if password:
                out.append(password)
        return out
