"""The store interface; an S3-compatible backend implements the same three methods."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


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


class ArtifactStore(Protocol):
    """Content-addressed bytes."""

    def writer(self) -> StoreWriter:
        """Start writing a new object."""

    def open_range(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Stream bytes [start, end] (inclusive) of an object."""

    def exists(self, sha256: str) -> bool:
        """Whether the object is stored."""

    def fetch_to(self, sha256: str, destination: Path) -> Path:
        """Make the object available as a local file (a copy or a link) at destination."""

    def put_file(self, source: Path) -> StoredObject:
        """Store a local file."""

    def objects(self) -> Iterator[tuple[str, float]]:
        """Every stored object: (sha256, last written as a Unix time)."""

    def delete(self, sha256: str) -> bool:
        """Remove an object; False when it was not there."""
