"""A seekable, read-only file over an S3 object, read in ranged GETs (zip archives seek)."""

from __future__ import annotations

import io
from typing import Any


class RangedObject(io.RawIOBase):
    """Raw reads of an S3 object by byte range; wrap in io.BufferedReader for efficient small reads."""

    def __init__(self, client: Any, bucket: str, key: str, size: int) -> None:
        self._client, self._bucket, self._key, self._size = client, bucket, key, size
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        wanted = min(len(buffer), self._size - self._position)
        if wanted <= 0:
            return 0
        end = self._position + wanted - 1
        body = self._client.get_object(
            Bucket=self._bucket, Key=self._key, Range=f"bytes={self._position}-{end}"
        )
        data = body["Body"].read()
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)


def open_ranged(client: Any, bucket: str, key: str, size: int, buffer_bytes: int) -> io.BufferedReader:
    """A buffered, seekable reader over the object."""
    return io.BufferedReader(RangedObject(client, bucket, key, size), buffer_size=buffer_bytes)
