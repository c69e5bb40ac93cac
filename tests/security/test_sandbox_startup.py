"""Fail closed: a worker that has no way to isolate untrusted models does not start, unless the
operator opts out in so many words.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from service.cli.serve import worker_command
from tests.figures import record
from tests.fixtures.infrastructure import ROOT, stop_worker

NO_LAYERS = {"MODELPRESS_SANDBOX_LANDLOCK": "false", "MODELPRESS_SANDBOX_DROP_USER": "false"}
# A queue of its own: the opted-out worker must never take another test's jobs.
QUEUE = "sandbox-startup-test"


def test_a_worker_without_any_isolation_layer_refuses_to_start(database: str, broker: str) -> None:
    command = worker_command(hostname="no-isolation@%h", beat_schedule=None, queues=QUEUE, concurrency=1)
    done = subprocess.run(
        command,
        cwd=ROOT,
        env=os.environ | NO_LAYERS,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode != 0
    assert "refused to start" in done.stderr and "MODELPRESS_SANDBOX_ALLOW_UNISOLATED" in done.stderr
    assert " ready." not in done.stdout + done.stderr
    record("sandbox_startup", {"worker without isolation": f"exit {done.returncode}, refused to start"})


def test_the_operator_may_run_unisolated_only_by_saying_so(
    database: str, broker: str, tmp_path: Path
) -> None:
    command = worker_command(hostname="opted-out@%h", beat_schedule=None, queues=QUEUE, concurrency=1)
    env = os.environ | NO_LAYERS | {"MODELPRESS_SANDBOX_ALLOW_UNISOLATED": "true"}
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 120
        while b" ready." not in log_path.read_bytes():
            assert process.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "the opted-out worker did not become ready"
            time.sleep(0.3)
    finally:
        stop_worker(process)

    assert "sandbox.unisolated" in log_path.read_text()
