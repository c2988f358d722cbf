"""Settings of the prediction API and the dashboard (`LOANS_SERVE_` prefix), as in core/settings.py."""

from __future__ import annotations

import ipaddress

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError
from core.settings import CHAMPION, Port


class ServingSettings(BaseSettings):
    """Where the API and the dashboard listen, and how they follow the champion and the topics."""

    model_config = SettingsConfigDict(
        env_prefix="LOANS_SERVE_", env_file=".env", extra="ignore", validate_default=True
    )
    host: str = "127.0.0.1"
    port: Port = 8000
    dashboard_port: Port = 8050
    alias: str = Field(CHAMPION, min_length=1, description="registry alias the API serves")
    poll_seconds: float = Field(10.0, gt=0, description="how often the API asks the registry for the alias")
    torch_threads: int = Field(1, ge=1, description="torch intra-op threads in the API process")
    max_batch: int = Field(10_000, ge=1, description="most applications in one /predict/batch request")
    max_body_bytes: int = Field(
        16 * 1024 * 1024, ge=1_024, description="larger request bodies are refused (413) before parsing"
    )
    max_waiting_rows: int = Field(
        20_000,
        ge=1,
        description="applications (rows) waiting for the scorer, singles and batches together; a request "
        "that would pass it gets 503 before its body is parsed",
    )
    allowed_hosts: str = Field(
        "",
        pattern=r"^[A-Za-z0-9.:\[\],*-]*$",
        description="Host header values served besides localhost, 127.0.0.1, ::1 and LOANS_SERVE_HOST "
        "(comma-separated names); required when listening on every address (DNS rebinding)",
    )
    api_key: SecretStr = Field(
        SecretStr(""),
        description="required by /predict when set; must be set when the API listens beyond loopback",
    )
    lookback_seconds: float = Field(
        300.0, ge=0, description="the dashboard starts reading the output topics this far back"
    )
    api_url: str = Field(
        "",
        pattern=r"^(https?://.+)?$",
        description="the API the dashboard asks for its model ('' = host:port)",
    )

    def api_base(self) -> str:
        """The API's base URL as the dashboard reaches it."""
        return self.api_url.rstrip("/") or f"http://{self.host}:{self.port}"

    def loopback(self) -> bool:
        """Does the API listen on loopback only (localhost, 127.0.0.0/8, ::1)?"""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def hosts(self) -> frozenset[str]:
        """The Host header names served (without port): a page of another name that resolves here (DNS
        rebinding) gets 400."""
        named = {h.strip().lower() for h in self.allowed_hosts.split(",") if h.strip()}
        listening = {self.host.lower()} - {"0.0.0.0", "::"}  # noqa: S104
        return frozenset({"localhost", "127.0.0.1", "::1", *listening, *named})

    def require_key(self) -> None:
        """Beyond loopback an API key is required, and on every address the names clients use: a
        ConfigError saying how to set them."""
        if not self.loopback() and not self.api_key.get_secret_value():
            raise ConfigError(
                f"LOANS_SERVE_HOST={self.host} is reachable beyond this machine, so LOANS_SERVE_API_KEY must "
                "be set (in .env, e.g. from `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        if self.host in ("0.0.0.0", "::") and not self.allowed_hosts.strip():  # noqa: S104
            raise ConfigError(
                f"LOANS_SERVE_HOST={self.host} listens on every address: set LOANS_SERVE_ALLOWED_HOSTS to "
                "the names clients reach it by (e.g. loans.example.com,10.0.0.5)"
            )
