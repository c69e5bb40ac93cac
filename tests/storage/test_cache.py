"""The worker's object cache: inputs come from the store once, the cache stays within its size."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import cast

import pytest

from service.storage import ArtifactStore, open_store
from service.storage.s3 import S3Store
from worker.cache import ObjectCache


@pytest.fixture
def s3_store(s3_bucket: str) -> S3Store:
    return cast(S3Store, open_store(f"s3://{s3_bucket}/cache-{os.urandom(4).hex()}"))


def _put(store: ArtifactStore, content: bytes) -> str:
    writer = store.writer()
    writer.write(content)
    return writer.commit().sha256


def test_a_cached_object_is_served_without_the_store(s3_store: S3Store, tmp_path: Path) -> None:
    content = os.urandom(4000)
    sha256 = _put(s3_store, content)
    cache = ObjectCache(tmp_path / "cache", limit_bytes=1_000_000)
    assert cache.fetch(s3_store, sha256, tmp_path / "first", len(content)).read_bytes() == content

    s3_store.delete(sha256)  # gone from the store: only the cache can answer now
    second = cache.fetch(s3_store, sha256, tmp_path / "second", len(content))

    assert second.read_bytes() == content
    second.write_bytes(b"altered by a technique")
    assert (tmp_path / "cache" / sha256).read_bytes() == content  # jobs get copies


def test_the_least_recently_used_objects_leave_first(s3_store: S3Store, tmp_path: Path) -> None:
    cache = ObjectCache(tmp_path / "cache", limit_bytes=2500)
    digests = [_put(s3_store, os.urandom(1000)) for _ in range(3)]
    for index, sha256 in enumerate(digests):
        cache.fetch(s3_store, sha256, tmp_path / f"in-{index}", 1000)
        os.utime(tmp_path / "cache" / sha256, (index, index))  # used in this order

    assert sorted(path.name for _, _, path in cache.entries()) == sorted(digests[1:])


def test_an_object_larger_than_the_cache_bypasses_it(s3_store: S3Store, tmp_path: Path) -> None:
    content = os.urandom(5000)
    sha256 = _put(s3_store, content)
    cache = ObjectCache(tmp_path / "cache", limit_bytes=1000)
    assert cache.fetch(s3_store, sha256, tmp_path / "big", len(content)).read_bytes() == content
    assert cache.entries() == []


def test_bytes_that_do_not_match_their_digest_are_refused(s3_store: S3Store, tmp_path: Path) -> None:
    genuine = _put(s3_store, os.urandom(100))
    impostor = hashlib.sha256(b"something else").hexdigest()
    s3_store.client.copy(
        {"Bucket": s3_store.bucket, "Key": s3_store.key(genuine)},
        s3_store.bucket,
        s3_store.key(impostor),
    )
    cache = ObjectCache(tmp_path / "cache", limit_bytes=1_000_000)
    with pytest.raises(OSError, match="different bytes"):
        cache.fetch(s3_store, impostor, tmp_path / "input", 100)
    assert cache.entries() == []
