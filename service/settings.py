"""Settings read from the environment (prefix MODELPRESS_), validated at start-up."""

from __future__ import annotations

import ipaddress
import logging
import tempfile
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_HOME = Path("var")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class Settings(BaseSettings):
    """Every tunable of the API and the workers; the defaults are the embedded mode."""

    model_config = SettingsConfigDict(env_prefix="MODELPRESS_", env_ignore_empty=True, extra="ignore")

    home: Path = Field(DEFAULT_HOME, description="Folder for the embedded database, broker and store")
    database_url: str = ""
    broker_url: str = ""
    storage_dir: Path | None = Field(None, description="Shorthand for storage_url=file://<folder>")
    storage_url: str = Field(
        "",
        pattern="^((file|s3)://.+)?$",
        description="file:///folder (default: under home) or s3://bucket/prefix",
    )
    storage_part_bytes: int = Field(
        8 * 1024**2, ge=5 * 1024**2, description="Multipart upload part size for the S3 store"
    )
    storage_presigned_downloads: bool = Field(
        False, description="Redirect artifact downloads to a presigned store URL (S3 store only)"
    )
    storage_presign_expiry_s: int = Field(300, ge=1, le=7 * 24 * 3600)
    scratch_dir: Path | None = Field(
        None, description="A worker's private folder for job files and its cache"
    )
    worker_cache_bytes: int = Field(
        2 * 1024**3, ge=0, description="Room for a worker's local cache of store objects (by SHA-256)"
    )
    max_upload_bytes: int = Field(2 * 1024**3, gt=0)
    max_json_body_bytes: int = Field(1024**2, ge=1024, description="Largest body of a non-upload request")
    max_header_bytes: int = Field(
        32 * 1024, ge=4096, description="Largest request line plus headers (the server's h11 limit)"
    )
    max_header_count: int = Field(100, ge=16, description="Most header fields in one request")
    bench_threads: int = Field(1, ge=1)
    bench_time_budget_s: float = Field(8.0, gt=0)
    bench_warmup_runs: int = Field(5, ge=0)
    bench_min_runs: int = Field(20, ge=1)
    step_time_limit_s: int = Field(1800, ge=1, description="Wall-clock limit of one step in the sandbox")
    sandbox_memory_bytes: int = Field(8 * 1024**3, ge=64 * 1024**2)
    sandbox_landlock: bool = Field(
        True, description="Confine sandboxed children with Landlock where the kernel has it"
    )
    sandbox_drop_user: bool = Field(
        True, description="Run sandboxed children as sandbox_uid when the worker is root"
    )
    sandbox_uid: int = Field(65534, ge=1)
    sandbox_gid: int = Field(65534, ge=1)
    sandbox_allow_unisolated: bool = Field(
        False, description="Run untrusted models even where no isolation layer is available (not advised)"
    )
    worker_niceness: int = Field(
        0, ge=0, le=19, description="Scheduling niceness of worker processes (serve sets 10: the API first)"
    )
    # A lease is renewed every third of it: below 5 s one slow database round trip would lose it.
    lease_seconds: int = Field(60, ge=5, description="How long a job's worker may go without renewing")
    sweep_interval_s: float = Field(15.0, gt=0)
    max_attempts: int = Field(3, ge=1, description="Attempts of a job (or an ingest) before it fails")
    worker_heartbeat_s: float = Field(5.0, gt=0)
    worker_timeout_s: float = Field(30.0, gt=0, description="A worker silent this long is dead")
    stale_temp_after_s: float = Field(3600.0, gt=0)
    requeue_after_s: float = Field(
        300.0, gt=0, description="A queued job published this long ago is published again"
    )
    ingest_timeout_s: float = Field(900.0, gt=0)
    quota_storage_bytes: int = Field(100 * 1024**3, gt=0)
    quota_concurrent_jobs: int = Field(20, ge=1)
    webhook_max_attempts: int = Field(6, ge=1)
    webhook_backoff_s: float = Field(10.0, ge=0)
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
    log_level: str = Field("INFO", description="A level of Python's logging: DEBUG, INFO, WARNING, ...")
    max_concurrent_requests: int = Field(
        32, ge=1, description="Requests one API process works on at once; the database pool is sized from it"
    )
    queue_wait_s: float = Field(1.0, ge=0, description="How long a request waits for a slot before a 503")
    auth_cache_s: float = Field(
        5.0, ge=0, description="How long a checked API key is trusted without a query"
    )
    sqlite_busy_timeout_ms: int = Field(100, ge=0)
    request_lock_wait_s: float = Field(
        0.4, ge=0, description="A request's wait for SQLite's write lock before a 503"
    )
    background_lock_wait_s: float = Field(30.0, ge=0, description="The same wait for workers and the CLI")

    @field_validator("database_url", mode="after")
    @classmethod
    def _use_psycopg3(cls, value: str) -> str:
        # Plain postgresql:// would pick psycopg2, which is not installed.
        if value.startswith("postgresql://") or value.startswith("postgres://"):
            return "postgresql+psycopg://" + value.split("://", 1)[1]
        return value

    @field_validator("log_level", mode="after")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in logging.getLevelNamesMapping() or level == "NOTSET":
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return level

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        # A worker beating slower than it is declared dead would vanish from /readyz between beats.
        if self.worker_timeout_s <= self.worker_heartbeat_s:
            raise ValueError(
                f"worker_timeout_s ({self.worker_timeout_s}) must exceed worker_heartbeat_s"
                f" ({self.worker_heartbeat_s})"
            )
        return self

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
    def resolved_storage_url(self) -> str:
        """The artifact store's URL: MODELPRESS_STORAGE_URL, else the local folder."""
        return self.storage_url or self.resolved_storage_dir.as_uri()

    @property
    def resolved_scratch_dir(self) -> Path:
        """The worker's private scratch folder."""
        return (self.scratch_dir or Path(tempfile.gettempdir()) / "modelpress-scratch").resolve()

    @property
    def is_embedded(self) -> bool:
        """True when running without external servers."""
        return not self.broker_url


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, built once; invalid ones stop the process with a readable message."""
    try:
        return Settings()
    except ValidationError as invalid:
        raise SystemExit(settings_error(invalid)) from None


def settings_error(invalid: ValidationError) -> str:
    """One line per invalid setting, named as it is set: `MODELPRESS_LEASE_SECONDS=2: ...`."""
    lines = ["modelpress: invalid settings"]
    for error in invalid.errors():
        name = "MODELPRESS_" + str(error["loc"][0]).upper() if error["loc"] else "settings"
        given = f"={error['input']}" if error["loc"] else ""
        lines.append(f"  {name}{given}: {error['msg']}")
    return "\n".join(lines)
