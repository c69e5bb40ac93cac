"""The artifact store: bytes keyed by SHA-256 behind one small interface."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

from service.settings import Settings, get_settings
from service.storage.base import ArtifactStore, StagingWriter, StoredObject, StoreWriter
from service.storage.local import LocalStore


def open_store(url: str, *, part_bytes: int = 8 * 1024 * 1024) -> ArtifactStore:
    """The store a URL names: file:///folder, or s3://bucket/prefix (credentials from AWS_* variables)."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return LocalStore(Path(unquote(parts.path)))
    if parts.scheme == "s3":
        from service.storage.s3 import S3Store  # boto3 loads only where the S3 store is used

        return S3Store(s3_client(), parts.netloc, unquote(parts.path), part_bytes=part_bytes)
    raise ValueError(f"unsupported storage URL scheme {parts.scheme!r}: use file:// or s3://")


def s3_client() -> object:
    """A boto3 S3 client from the standard AWS variables (AWS_ENDPOINT_URL for S3-compatible servers)."""
    import boto3
    from botocore.config import Config

    # Since boto3 1.36 checksums are sent and demanded by default; S3-compatible servers need them off.
    config = Config(
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"mode": "standard", "max_attempts": 5},
        max_pool_connections=32,
    )
    return boto3.session.Session().client("s3", config=config)


def store_for(settings: Settings) -> ArtifactStore:
    """The store the settings configure."""
    return open_store(settings.resolved_storage_url, part_bytes=settings.storage_part_bytes)


@lru_cache
def get_store() -> ArtifactStore:
    """The process-wide configured store."""
    return store_for(get_settings())


__all__ = [
    "ArtifactStore",
    "LocalStore",
    "StagingWriter",
    "StoreWriter",
    "StoredObject",
    "get_store",
    "open_store",
    "store_for",
]
