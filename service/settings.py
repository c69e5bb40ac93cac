"""Settings read from the environment (prefix MODELPRESS_), validated at start-up."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_HOME = Path("var")


class Settings(BaseSettings):
    """Every tunable of the API and the workers; the defaults are the embedded mode."""

    model_config = SettingsConfigDict(env_prefix="MODELPRESS_", env_ignore_empty=True, extra="ignore")

    home: Path = Field(DEFAULT_HOME, description="Folder for the embedded database, broker and store")
    database_url: str = ""
    broker_url: str = ""
    storage_dir: Path | None = None
    max_upload_bytes: int = 2 * 1024**3
    max_json_body_bytes: int = Field(1024**2, ge=1024, description="Largest body of a non-upload request")
    max_header_bytes: int = Field(
        32 * 1024, ge=4096, description="Largest request line plus headers (the server's h11 limit)"
    )
    max_header_count: int = Field(100, ge=16, description="Most header fields in one request")
    bench_threads: int = 1
    bench_time_budget_s: float = 8.0
    bench_warmup_runs: int = 5
    bench_min_runs: int = 20
    step_time_limit_s: int = 1800
    sandbox_memory_bytes: int = 8 * 1024**3
    sandbox_landlock: bool = Field(
        True, description="Confine sandboxed children with Landlock where the kernel has it"
    )
    sandbox_drop_user: bool = Field(
        True, description="Run sandboxed children as sandbox_uid when the worker is root"
    )
    sandbox_uid: int = 65534
    sandbox_gid: int = 65534
    sandbox_allow_unisolated: bool = Field(
        False, description="Run untrusted models even where no isolation layer is available (not advised)"
    )
    worker_niceness: int = Field(
        0, ge=0, le=19, description="Scheduling niceness of worker processes (serve sets 10: the API first)"
    )
    lease_seconds: int = 60
    sweep_interval_s: float = 15.0
    max_attempts: int = 3
    worker_heartbeat_s: float = 5.0
    worker_timeout_s: float = 30.0
    stale_temp_after_s: float = 3600.0
    requeue_after_s: float = 300.0
    ingest_timeout_s: float = 900.0
    quota_storage_bytes: int = 100 * 1024**3
    quota_concurrent_jobs: int = 20
    webhook_max_attempts: int = 6
    webhook_backoff_s: float = 10.0
    webhook_timeout_s: float = Field(10.0, gt=0, description="One total deadline per delivery attempt")
    webhook_allowed_networks: Annotated[tuple[IPv4Network | IPv6Network, ...], NoDecode] = Field(
        (), description="CIDR networks webhooks may reach besides public addresses (internal receivers)"
    )
    job_retention_days: float = Field(
        0.0, ge=0, description="Delete jobs this long after they end; 0 keeps them"
    )
    store_gc_interval_s: float = Field(
        600.0, gt=0, description="How often the sweeper deletes unreferenced files"
    )
    store_gc_grace_s: float = Field(
        3600.0, ge=0, description="Files written more recently are never collected"
    )
    log_format: str = Field("json", pattern="^(json|console)$")
    log_level: str = "INFO"
    max_concurrent_requests: int = Field(
        32, ge=1, description="Requests one API process works on at once; the database pool is sized from it"
    )
    queue_wait_s: float = Field(1.0, ge=0, description="How long a request waits for a slot before a 503")
    auth_cache_s: float = Field(
        5.0, ge=0, description="How long a checked API key is trusted without a query"
    )
    sqlite_busy_timeout_ms: int = 100
    request_lock_wait_s: float = Field(
        0.4, description="A request's wait for SQLite's write lock before a 503"
    )
    background_lock_wait_s: float = Field(30.0, description="The same wait for workers and the CLI")

    @field_validator("database_url", mode="after")
    @classmethod
    def _use_psycopg3(cls, value: str) -> str:
        # Plain postgresql:// would pick psycopg2, which is not installed.
        if value.startswith("postgresql://") or value.startswith("postgres://"):
            return "postgresql+psycopg://" + value.split("://", 1)[1]
        return value

    @field_validator("webhook_allowed_networks", mode="before")
    @classmethod
    def _parse_networks(cls, value: Any) -> Any:
        # "10.0.0.0/8, ::1/128" from the environment; host bits set (10.1.2.3/8) is a typo: refused.
        items = value.replace(",", " ").split() if isinstance(value, str) else value
        return tuple(ipaddress.ip_network(item, strict=True) for item in items)

    @property
    def resolved_database_url(self) -> str:
        """The configured database, or the embedded SQLite file."""
        return self.database_url or f"sqlite:///{(self.home / 'modelpress.db').resolve()}"

    @property
    def resolved_broker_url(self) -> str:
        """The configured broker, or Celery's filesystem transport (no server)."""
        return self.broker_url or "filesystem://"

    @property
    def broker_folder(self) -> Path:
        """Where the filesystem transport keeps its messages in embedded mode."""
        return (self.home / "broker").resolve()

    @property
    def resolved_storage_dir(self) -> Path:
        """The artifact store's root folder."""
        return (self.storage_dir or self.home / "artifacts").resolve()

    @property
    def is_embedded(self) -> bool:
        """True when running without external servers."""
        return not self.broker_url


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, built once."""
    return Settings()
