"""Saving a download safely: a temporary file beside the target, checked, then moved into place."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from modelpress.errors import DownloadProblem
from modelpress.results import Download


class PartialFile:
    """A download in progress: bytes go to a private temporary file, hashed as they arrive.

    As a context manager it discards what was written when the block raises (an interrupted download).
    """

    def __init__(
        self,
        destination: Path,
        *,
        overwrite: bool,
        total: int = 0,
        on_chunk: Callable[[int, int], None] | None = None,
    ) -> None:
        self.destination = Path(destination)
        self.overwrite = overwrite
        self.total = total
        self.on_chunk = on_chunk
        refuse_existing(self.destination, overwrite=overwrite)
        handle, name = tempfile.mkstemp(prefix=f".{self.destination.name}.", dir=self.destination.parent)
        self.path = Path(name)
        os.chmod(handle, 0o644)  # mkstemp's 0600 suits a secret, not a model the user shares
        self._file: BinaryIO = os.fdopen(handle, "wb")
        self._digest = hashlib.sha256()
        self.written = 0

    def __enter__(self) -> PartialFile:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if kind is not None:
            self.discard()

    def write(self, chunk: bytes) -> None:
        """Append a chunk and report the bytes written so far (and the expected total) to on_chunk."""
        self._file.write(chunk)
        self._digest.update(chunk)
        self.written += len(chunk)
        if self.on_chunk is not None:
            self.on_chunk(self.written, self.total)

    def discard(self) -> None:
        """Drop what was written (an interrupted or refused download)."""
        self._file.close()
        self.path.unlink(missing_ok=True)

    def commit(self, expected_sha256: str) -> Download:
        """Check the SHA-256 and move the file into place; without overwrite, never over a file."""
        self._file.close()
        sha256 = self._digest.hexdigest()
        if expected_sha256 and expected_sha256 != sha256:
            self.path.unlink(missing_ok=True)
            raise DownloadProblem(
                {"title": "Corrupt download", "status": 0, "detail": "the SHA-256 differs from the ETag"}
            )
        try:
            if self.overwrite:
                self.path.replace(self.destination)
            else:
                _place_new(self.path, self.destination)
        finally:
            self.path.unlink(missing_ok=True)
        return Download(path=str(self.destination), size_bytes=self.written, sha256=sha256)


def refuse_existing(destination: Path, *, overwrite: bool) -> None:
    """FileExistsError when the target exists and overwriting was not asked for."""
    if destination.exists() and not overwrite:
        raise FileExistsError(f"{destination} exists; pass overwrite=True to replace it")


def _place_new(source: Path, destination: Path) -> None:
    """Give the file its final name only if that name is free, even if it was taken meanwhile."""
    try:
        os.link(source, destination)  # fails if the name exists: no window between check and move
    except FileExistsError:
        raise FileExistsError(f"{destination} appeared during the download; it was left as it was") from None
    except OSError:  # a file system without hard links
        refuse_existing(destination, overwrite=False)
        source.replace(destination)
