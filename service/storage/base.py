"""The store interface, implemented by the local-directory and the S3-compatible backends."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol


@dataclass(frozen=True)
class StoredObject:
    """What the store knows about written bytes."""

    sha256: str
    size_bytes: int


class StoreWriter(Protocol):
    """Receives bytes as they stream in, hashing them on the way."""

    size_bytes: int

    def write(self, chunk: bytes) -> None:
        """Append a chunk."""

    def commit(self) -> StoredObject:
        """Finish: the bytes become readable under their SHA-256."""

    def abort(self) -> None:
        """Discard everything written so far."""


class StagingWriter(StoreWriter, Protocol):
    """A store writer whose bytes can be read back (seekable) before they are committed."""

    def staged(self) -> BinaryIO:
        """The bytes written so far, to inspect before commit (the caller closes it)."""


class ArtifactStore(Protocol):
    """Content-addressed bytes."""

    remote: bool

    def writer(self) -> StagingWriter:
        """Start writing a new object."""

    def open_range(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Stream bytes [start, end] (inclusive) of an object."""

    def reader(self, sha256: str) -> BinaryIO:
        """A seekable binary file over an object (the caller closes it)."""

    def exists(self, sha256: str) -> bool:
        """Whether the object is stored."""

    def fetch_to(self, sha256: str, destination: Path) -> Path:
        """Make the object available as a local file (a copy) at destination."""

    def put_file(self, source: Path) -> StoredObject:
        """Store a local file."""

    def objects(self) -> Iterator[tuple[str, float]]:
        """Every stored object: (sha256, last written as a Unix time)."""

    def delete(self, sha256: str) -> bool:
        """Remove an object; False when it was not there."""

    def remove_stale_uploads(self, older_than_s: float) -> int:
        """Discard unfinished uploads untouched for `older_than_s` (a killed process's leftovers)."""

    def check(self) -> None:
        """Raise when the store cannot be reached (readiness)."""

    def download_url(self, sha256: str, filename: str, expires_s: int) -> str | None:
        """A time-limited URL a client may fetch the object from directly, or None (local store)."""


def valid_digest(sha256: str) -> str:
    """The digest itself, or ValueError: keys built from it must not escape the store's namespace."""
    if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
        raise ValueError("not a sha256 digest")
    return sha256


def copy_stream(store: ArtifactStore, source: BinaryIO, chunk_bytes: int) -> StoredObject:
    """Stream a readable file into the store, aborting the write on any error."""
    writer = store.writer()
    try:
        while chunk := source.read(chunk_bytes):
            writer.write(chunk)
    except BaseException:
        writer.abort()
        raise
    return writer.commit()
