"""One suite, both backends: the local folder and a real SeaweedFS S3 server (never a mock)."""

from __future__ import annotations

import hashlib
import io
import os
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest

from service.datasets.inspect import read_npz_headers
from service.storage import ArtifactStore
from tests.fixtures.storage import PART_BYTES

CHUNK = 64 * 1024


def _write(store: ArtifactStore, content: bytes) -> str:
    writer = store.writer()
    for start in range(0, len(content), CHUNK):
        writer.write(content[start : start + CHUNK])
    return writer.commit().sha256


def _assert_clean(store: ArtifactStore) -> None:
    """No unfinished upload, staged object or multipart part is left behind."""
    assert store.remove_stale_uploads(0) == 0


def test_small_object_round_trips_under_its_sha256(store: ArtifactStore, tmp_path: Path) -> None:
    content = b"small model bytes " + uuid.uuid4().bytes
    sha256 = _write(store, content)

    assert sha256 == hashlib.sha256(content).hexdigest()
    assert store.exists(sha256) and not store.exists("0" * 64)
    assert b"".join(store.open_range(sha256)) == content
    assert b"".join(store.open_range(sha256, 6, 10)) == content[6:11]
    assert store.fetch_to(sha256, tmp_path / "copy").read_bytes() == content
    assert [name for name, _ in store.objects()] == [sha256]
    _assert_clean(store)


def test_large_object_streams_in_parts_and_reads_back_by_ranges(store: ArtifactStore, tmp_path: Path) -> None:
    content = os.urandom(2 * PART_BYTES + 12345)  # three parts on S3
    sha256 = _write(store, content)

    assert sha256 == hashlib.sha256(content).hexdigest()
    start, end = PART_BYTES - 3, PART_BYTES + 3  # across a part boundary
    assert b"".join(store.open_range(sha256, start, end)) == content[start : end + 1]
    assert b"".join(store.open_range(sha256, len(content) - 5)) == content[-5:]
    with store.reader(sha256) as reader:
        reader.seek(-7, io.SEEK_END)
        assert reader.read() == content[-7:]
        reader.seek(PART_BYTES)
        assert reader.read(4) == content[PART_BYTES : PART_BYTES + 4]
    assert store.fetch_to(sha256, tmp_path / "copy").read_bytes() == content
    _assert_clean(store)


def test_same_bytes_twice_are_one_object(store: ArtifactStore) -> None:
    content = os.urandom(1000)
    assert _write(store, content) == _write(store, content)
    assert len(list(store.objects())) == 1
    _assert_clean(store)


def test_aborted_upload_leaves_no_object_and_no_part(store: ArtifactStore) -> None:
    writer = store.writer()
    for _ in range(2 * PART_BYTES // CHUNK + 1):  # past a part: S3 holds a multipart upload now
        writer.write(os.urandom(CHUNK))
    writer.abort()

    assert list(store.objects()) == []
    _assert_clean(store)


def test_staged_bytes_are_readable_before_commit_and_refusal_leaves_nothing(
    store: ArtifactStore, tmp_path: Path
) -> None:
    archive = tmp_path / "data.npz"
    np.savez(archive, x=np.arange(12, dtype=np.float32).reshape(3, 4), labels=np.arange(3))
    writer = store.writer()
    writer.write(archive.read_bytes())
    with writer.staged() as staged:
        arrays = read_npz_headers(staged, scan=True)
    writer.abort()  # as when the dataset check refuses the file

    assert arrays["x"]["shape"] == [3, 4] and arrays["labels"]["max"] == 2
    assert list(store.objects()) == []
    _assert_clean(store)


def test_staged_then_committed_object_is_at_its_address(store: ArtifactStore) -> None:
    content = os.urandom(PART_BYTES + 99)
    writer = store.writer()
    writer.write(content)
    with writer.staged() as staged:
        assert staged.read(10) == content[:10]
    stored = writer.commit()

    assert b"".join(store.open_range(stored.sha256)) == content
    _assert_clean(store)


def test_the_sweep_removes_only_stale_unfinished_uploads(store: ArtifactStore) -> None:
    abandoned = store.writer()
    abandoned.write(os.urandom(PART_BYTES + 1))  # a killed API's multipart upload (or temp file)

    assert store.remove_stale_uploads(3600) == 0  # recent: it may still be in progress
    time.sleep(1.1)  # S3 timestamps have one-second resolution
    assert store.remove_stale_uploads(1) >= 1
    _assert_clean(store)
    assert list(store.objects()) == []


def test_delete_removes_an_object_once(store: ArtifactStore) -> None:
    sha256 = _write(store, os.urandom(100))
    assert store.delete(sha256) is True
    assert store.delete(sha256) is False
    assert not store.exists(sha256)


def test_keys_are_only_sha256_digests(store: ArtifactStore) -> None:
    with pytest.raises(ValueError):
        store.exists("../../etc/passwd")


def test_presigned_url_serves_the_bytes_on_s3_only(store: ArtifactStore, store_url: str) -> None:
    content = os.urandom(3000)
    sha256 = _write(store, content)
    url = store.download_url(sha256, "model.onnx", 60)

    if store_url.startswith("file:"):
        assert url is None
    else:
        assert url is not None
        fetched = httpx.get(url, timeout=10)
        assert fetched.status_code == 200 and fetched.content == content
        assert "model.onnx" in fetched.headers["content-disposition"]
    store.check()


def test_the_storage_url_picks_the_backend(tmp_path: Path, s3_bucket: str) -> None:
    from service.settings import Settings
    from service.storage import LocalStore, store_for
    from service.storage.s3 import S3Store

    shorthand = store_for(Settings(storage_dir=tmp_path / "dir"))
    s3 = store_for(Settings(storage_url=f"s3://{s3_bucket}/some/prefix"))

    assert isinstance(shorthand, LocalStore) and shorthand.root == (tmp_path / "dir").resolve()
    assert isinstance(s3, S3Store) and (s3.bucket, s3.prefix) == (s3_bucket, "some/prefix/")
    with pytest.raises(ValueError):
        Settings(storage_url="ftp://example.org/store")
