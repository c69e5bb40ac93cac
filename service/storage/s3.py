"""S3-compatible store: objects under <prefix>objects/ab/<sha256>, streamed in as multipart uploads.

The digest is known only once the last byte is in, so a large upload goes to <prefix>uploads/<id>
in parts and is then copied server-side to its content address. Small uploads (one part) are held
in memory and put straight to their address. Unfinished multipart uploads and staged objects are
aborted on error and swept when stale (`remove_stale_uploads`).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from botocore.exceptions import ClientError

from service.storage.base import StoredObject, copy_stream, valid_digest
from service.storage.ranged import open_ranged

CHUNK = 1024 * 1024
MIN_PART_BYTES = 5 * 1024 * 1024  # S3's smallest part (but the last)


class S3Writer:
    """Streams into a multipart upload part by part, hashing as it goes; never holds more than a part."""

    def __init__(self, store: S3Store) -> None:
        self._store = store
        self._key = f"{store.prefix}uploads/{uuid.uuid4().hex}"
        self._hash = hashlib.sha256()
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._staged = False
        self.size_bytes = 0

    def write(self, chunk: bytes) -> None:
        """Append a chunk; a full part goes to the server at once."""
        self._hash.update(chunk)
        self.size_bytes += len(chunk)
        self._buffer += chunk
        if len(self._buffer) >= self._store.part_bytes:
            self._send_part()

    def _send_part(self) -> None:
        client, bucket = self._store.client, self._store.bucket
        if self._upload_id is None:
            self._upload_id = client.create_multipart_upload(Bucket=bucket, Key=self._key)["UploadId"]
        number = len(self._parts) + 1
        sent = client.upload_part(
            Bucket=bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=bytes(self._buffer),
        )
        self._parts.append({"PartNumber": number, "ETag": sent["ETag"]})
        self._buffer = bytearray()

    def _stage(self) -> None:
        """Complete the multipart upload at the staging key (or put a small object there)."""
        if self._staged:
            return
        client, bucket = self._store.client, self._store.bucket
        if self._upload_id is None:
            client.put_object(Bucket=bucket, Key=self._key, Body=bytes(self._buffer))
        else:
            if self._buffer:
                self._send_part()
            client.complete_multipart_upload(
                Bucket=bucket, Key=self._key, UploadId=self._upload_id, MultipartUpload={"Parts": self._parts}
            )
            self._upload_id = None
        self._buffer = bytearray()
        self._staged = True

    def staged(self) -> BinaryIO:
        """Finish the upload at its staging key and read it back by ranges (no local copy)."""
        try:
            self._stage()
        except BaseException:
            self.abort()
            raise
        return open_ranged(self._store.client, self._store.bucket, self._key, self.size_bytes, CHUNK)

    def commit(self) -> StoredObject:
        """Place the bytes at their content address (rewritten even when present: fresh for the GC)."""
        digest = self._hash.hexdigest()
        target = self._store.key(digest)
        client, bucket = self._store.client, self._store.bucket
        try:
            if self._upload_id is None and not self._staged:
                client.put_object(Bucket=bucket, Key=target, Body=bytes(self._buffer))
                self._buffer = bytearray()
                return StoredObject(sha256=digest, size_bytes=self.size_bytes)
            self._stage()
            client.copy({"Bucket": bucket, "Key": self._key}, bucket, target)
        except BaseException:
            self.abort()
            raise
        client.delete_object(Bucket=bucket, Key=self._key)
        return StoredObject(sha256=digest, size_bytes=self.size_bytes)

    def abort(self) -> None:
        """Drop the parts sent so far, or the staged object."""
        client, bucket = self._store.client, self._store.bucket
        self._buffer = bytearray()
        if self._upload_id is not None:
            client.abort_multipart_upload(Bucket=bucket, Key=self._key, UploadId=self._upload_id)
            self._upload_id = None
        if self._staged:
            client.delete_object(Bucket=bucket, Key=self._key)
            self._staged = False


class S3Store:
    """Artifacts in a bucket of an S3-compatible server."""

    remote = True

    def __init__(self, client: Any, bucket: str, prefix: str = "", part_bytes: int = 8 * 1024 * 1024) -> None:
        self.client, self.bucket = client, bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.part_bytes = max(part_bytes, MIN_PART_BYTES)

    def key(self, sha256: str) -> str:
        """The object key of a digest."""
        return f"{self.prefix}objects/{sha256[:2]}/{valid_digest(sha256)}"

    def writer(self) -> S3Writer:
        """Start writing a new object."""
        return S3Writer(self)

    def exists(self, sha256: str) -> bool:
        """Whether the object is stored."""
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key(sha256))
        except ClientError as error:
            if _missing(error):
                return False
            raise
        return True

    def open_range(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Stream bytes [start, end] inclusive, straight from the server's response."""
        ranged = (
            {} if start == 0 and end is None else {"Range": f"bytes={start}-{'' if end is None else end}"}
        )
        response = self.client.get_object(Bucket=self.bucket, Key=self.key(sha256), **ranged)
        body = response["Body"]
        try:
            yield from body.iter_chunks(CHUNK)
        finally:
            body.close()

    def reader(self, sha256: str) -> BinaryIO:
        """A seekable reader over the object, by ranged GETs."""
        key = self.key(sha256)
        size = self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"]
        return open_ranged(self.client, self.bucket, key, size, CHUNK)

    def fetch_to(self, sha256: str, destination: Path) -> Path:
        """Download the object to a local file (in parallel ranges for large ones)."""
        self.client.download_file(self.bucket, self.key(sha256), str(destination))
        return destination

    def put_file(self, source: Path) -> StoredObject:
        """Store a local file by streaming it through a writer."""
        with source.open("rb") as handle:
            return copy_stream(self, handle, CHUNK)

    def objects(self) -> Iterator[tuple[str, float]]:
        """Every stored object: (sha256, last modified)."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{self.prefix}objects/"
        )
        for page in pages:
            for item in page.get("Contents", []):
                yield item["Key"].rsplit("/", 1)[-1], item["LastModified"].timestamp()

    def delete(self, sha256: str) -> bool:
        """Remove an object; False when it was not there."""
        if not self.exists(sha256):
            return False
        self.client.delete_object(Bucket=self.bucket, Key=self.key(sha256))
        return True

    def remove_stale_uploads(self, older_than_s: float) -> int:
        """Abort multipart uploads and delete staged objects older than `older_than_s`."""
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
        staging = f"{self.prefix}uploads/"
        removed = 0
        uploads = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=staging
        )
        for page in uploads:
            for upload in page.get("Uploads", []):
                if upload["Initiated"] <= cutoff:
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    removed += 1
        objects = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=staging)
        for page in objects:
            for item in page.get("Contents", []):
                if item["LastModified"] <= cutoff:
                    self.client.delete_object(Bucket=self.bucket, Key=item["Key"])
                    removed += 1
        return removed

    def check(self) -> None:
        """Raise when the bucket cannot be reached."""
        self.client.head_bucket(Bucket=self.bucket)

    def download_url(self, sha256: str, filename: str, expires_s: int) -> str | None:
        """A presigned GET of the object, named `filename` when saved."""
        return str(
            self.client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": self.key(sha256),
                    "ResponseContentDisposition": f'attachment; filename="{filename}"',
                },
                ExpiresIn=expires_s,
            )
        )


def _missing(error: ClientError) -> bool:
    return str(error.response.get("Error", {}).get("Code")) in {"404", "NoSuchKey", "NotFound"}
