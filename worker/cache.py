"""A worker's size-bounded local cache of store objects, keyed by SHA-256 (least recently used go first).

Workers on other machines than the API fetch every input from the store; a model that many jobs
compress is downloaded once per worker machine, not once per job. Entries are whole files renamed
into place, so the pool processes of one worker share the folder safely.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import uuid
from pathlib import Path

from service.storage import ArtifactStore

CHUNK = 1024 * 1024


class ObjectCache:
    """Objects under folder/<sha256>; at most `limit_bytes` in all after each fetch."""

    def __init__(self, folder: Path, limit_bytes: int) -> None:
        self.folder, self.limit_bytes = folder, limit_bytes

    def fetch(self, store: ArtifactStore, sha256: str, destination: Path, size_bytes: int) -> Path:
        """Copy an object to destination, from the cache when it holds it, else from the store."""
        if not store.remote or size_bytes > self.limit_bytes:
            # A local store is a disk already; an object larger than the cache would evict everything.
            return _checked(store.fetch_to(sha256, destination), sha256)
        cached = self.folder / sha256
        if cached.is_file():
            os.utime(cached)  # recently used: evicted last
        else:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            partial = self.folder / f".partial-{uuid.uuid4().hex}"
            try:
                os.replace(_checked(store.fetch_to(sha256, partial), sha256), cached)
            finally:
                partial.unlink(missing_ok=True)
        # A copy: the technique's sandbox must not be able to alter what later jobs receive.
        shutil.copyfile(cached, destination)
        self.trim()
        return destination

    def entries(self) -> list[tuple[float, int, Path]]:
        """(last used, size, path) of each cached object, least recently used first."""
        found = []
        for path in self.folder.glob("[0-9a-f]*"):
            with contextlib.suppress(FileNotFoundError):
                stat = path.stat()
                found.append((stat.st_mtime, stat.st_size, path))
        return sorted(found)

    def trim(self) -> int:
        """Delete the least recently used objects until the cache fits its limit; how many went."""
        entries = self.entries()
        total = sum(size for _, size, _ in entries)
        removed = 0
        for _, size, path in entries:
            if total <= self.limit_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
            removed += 1
        return removed


def _checked(path: Path, sha256: str) -> Path:
    """The file, if its bytes hash to the digest they were stored under (the store is not trusted)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != sha256:
        path.unlink(missing_ok=True)
        raise OSError(f"store object {sha256} came back with different bytes")
    return path
