"""Local-directory store: objects/ab/abcdef…, written to a temp file then renamed atomically."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from service.storage.base import StoredObject, copy_stream, valid_digest

CHUNK = 1024 * 1024


class LocalWriter:
    """Streams into a temporary file in the store, hashing as it goes."""

    def __init__(self, root: Path) -> None:
        self._root = root
        handle, name = tempfile.mkstemp(dir=root / "tmp", prefix="upload-")
        self._file = os.fdopen(handle, "wb")
        self._path = Path(name)
        self._hash = hashlib.sha256()
        self.size_bytes = 0

    def write(self, chunk: bytes) -> None:
        """Append a chunk."""
        self._file.write(chunk)
        self._hash.update(chunk)
        self.size_bytes += len(chunk)

    def commit(self) -> StoredObject:
        """Move the finished file to its content address (a no-op when already stored)."""
        self._file.close()
        digest = self._hash.hexdigest()
        target = self._root / "objects" / digest[:2] / digest
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            self._path.unlink(missing_ok=True)
            os.utime(target)  # fresh again: the garbage collection spares recently written objects
        else:
            os.replace(self._path, target)
        return StoredObject(sha256=digest, size_bytes=self.size_bytes)

    def abort(self) -> None:
        """Delete the partial file."""
        self._file.close()
        self._path.unlink(missing_ok=True)

    def staged(self) -> BinaryIO:
        """The bytes written so far, flushed to their temporary file, to inspect before commit."""
        self._file.flush()
        return self._path.open("rb")


class LocalStore:
    """Artifacts in a local (or mounted) directory."""

    remote = False

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "tmp").mkdir(parents=True, exist_ok=True)
        (root / "objects").mkdir(parents=True, exist_ok=True)

    def remove_stale_uploads(self, older_than_s: float) -> int:
        """Delete temporary upload files untouched for `older_than_s` (a killed API's leftovers)."""
        # A live upload writes its file continuously, so its modification time stays recent.
        cutoff = time.time() - older_than_s
        removed = 0
        for leftover in (self.root / "tmp").glob("upload-*"):
            with contextlib.suppress(FileNotFoundError):
                if leftover.stat().st_mtime <= cutoff:
                    leftover.unlink()
                    removed += 1
        return removed

    def path(self, sha256: str) -> Path:
        """Where an object lives."""
        return self.root / "objects" / sha256[:2] / valid_digest(sha256)

    def writer(self) -> LocalWriter:
        """Start writing a new object."""
        return LocalWriter(self.root)

    def exists(self, sha256: str) -> bool:
        """Whether the object is stored."""
        return self.path(sha256).is_file()

    def open_range(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Stream bytes [start, end] inclusive."""
        with self.path(sha256).open("rb") as handle:
            handle.seek(start)
            remaining = None if end is None else end - start + 1
            while remaining is None or remaining > 0:
                chunk = handle.read(CHUNK if remaining is None else min(CHUNK, remaining))
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    def fetch_to(self, sha256: str, destination: Path) -> Path:
        """Copy the object to a local path (a copy, so a technique cannot alter the stored bytes)."""
        shutil.copyfile(self.path(sha256), destination)
        return destination

    def put_file(self, source: Path) -> StoredObject:
        """Store a local file by streaming it through a writer."""
        with source.open("rb") as handle:
            return copy_stream(self, handle, CHUNK)

    def reader(self, sha256: str) -> BinaryIO:
        """The object's file, open for reading."""
        return self.path(sha256).open("rb")

    def check(self) -> None:
        """Raise when the store's folder is gone (an unmounted volume)."""
        if not (self.root / "objects").is_dir():
            raise OSError("store directory missing")

    def download_url(self, sha256: str, filename: str, expires_s: int) -> str | None:  # noqa: ARG002
        """None: a local store has no URL of its own; the API streams the bytes."""
        return None

    def objects(self) -> Iterator[tuple[str, float]]:
        """Every stored object: (sha256, modification time)."""
        for path in (self.root / "objects").glob("??/*"):
            try:
                yield path.name, path.stat().st_mtime
            except FileNotFoundError:  # deleted while listing
                continue

    def delete(self, sha256: str) -> bool:
        """Remove an object; False when it was not there."""
        try:
            self.path(sha256).unlink()
        except FileNotFoundError:
            return False
        return True
