"""`python -m worker.sweep_loop --heartbeat FILE` touches the file after every pass (for compose)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.fixtures.infrastructure import ROOT


def _mtime(path: Path) -> float:
    return path.stat().st_mtime if path.exists() else 0.0


def test_the_heartbeat_file_is_touched_every_pass(database: str, broker: str, tmp_path: Path) -> None:
    heartbeat = tmp_path / "sweeper.alive"
    env = {**os.environ, "MODELPRESS_SWEEP_INTERVAL_S": "0.2"}
    process = subprocess.Popen(
        [sys.executable, "-m", "worker.sweep_loop", "--heartbeat", str(heartbeat)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        seen: set[float] = set()
        deadline = time.monotonic() + 60
        while len(seen - {0.0}) < 3 and time.monotonic() < deadline and process.poll() is None:
            seen.add(_mtime(heartbeat))
            time.sleep(0.05)
    finally:
        process.terminate()
        code = process.wait(timeout=30)

    assert len(seen - {0.0}) >= 3, "the heartbeat was not renewed pass after pass"
    assert code == 0, "SIGTERM ends the loop cleanly"
