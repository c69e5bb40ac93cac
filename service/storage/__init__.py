"""The artifact store: bytes keyed by SHA-256 behind one small interface."""

from __future__ import annotations

from functools import lru_cache

from service.settings import get_settings
from service.storage.base import ArtifactStore, StoredObject, StoreWriter
from service.storage.local import LocalStore


@lru_cache
def get_store() -> ArtifactStore:
    """The configured store (the local directory backend today)."""
    return LocalStore(get_settings().resolved_storage_dir)


__all__ = ["ArtifactStore", "LocalStore", "StoreWriter", "StoredObject", "get_store"]
