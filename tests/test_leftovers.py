"""Leftovers of killed processes: unfinished uploads in the store and job folders in scratch."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from service.storage.local import LocalStore
from worker import files


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_only_uploads_untouched_for_the_limit_are_removed(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    abandoned, live = store.root / "tmp" / "upload-abandoned", store.root / "tmp" / "upload-live"
    unrelated = store.root / "tmp" / "not-an-upload"
    for path in (abandoned, live, unrelated):
        path.write_bytes(b"bytes")
    _age(abandoned, 7200)
    _age(unrelated, 7200)

    assert store.remove_stale_uploads(3600) == 1
    assert not abandoned.exists() and live.exists() and unrelated.exists()
    assert store.remove_stale_uploads(0) == 1  # at embedded start-up every upload is a leftover
    assert not live.exists() and unrelated.exists()


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(files, "SCRATCH", tmp_path / "scratch")
    return tmp_path / "scratch"


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_job_folders_live_under_their_process_and_die_with_it(scratch: Path) -> None:
    mine = files.job_workdir(uuid.uuid4())
    assert mine.parent == scratch / str(os.getpid()) and mine.name.startswith("job-")
    orphan = scratch / str(_dead_pid()) / "job-killed"
    orphan.mkdir(parents=True)
    (orphan / "original.onnx").write_bytes(b"model")
    (scratch / "not-a-process").mkdir()

    assert files.remove_orphan_scratch() == 1
    assert not orphan.parent.exists() and mine.is_dir() and (scratch / "not-a-process").is_dir()


def test_a_new_process_empties_what_a_dead_one_left_under_its_pid(scratch: Path) -> None:
    # A reused pid: the folder looks alive, but everything in it is a predecessor's.
    left = scratch / str(os.getpid()) / "job-predecessor"
    left.mkdir(parents=True)
    files.claim_scratch()
    assert not left.exists()
