"""The `workers` table on Postgres: a real worker registers, beats, and leaves or ages out."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from service.cli.serve import worker_command
from service.db import new_session, utcnow
from service.workers import registry
from service.workers.orm import Worker, WorkerPool

ROOT = Path(__file__).resolve().parents[1]


def _row(pid: int) -> Worker | None:
    with new_session() as session:
        return session.scalar(
            select(Worker).where(Worker.hostname == socket.gethostname(), Worker.pid == pid)
        )


def _wait_row(pid: int, timeout: float = 90) -> Worker:
    deadline = time.monotonic() + timeout
    while (row := _row(pid)) is None:
        assert time.monotonic() < deadline, "the worker never registered"
        time.sleep(0.2)
    return row


@pytest.fixture
def probe_worker(database: str, broker: str, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A real worker on a queue of its own (it takes no one's jobs), beating twice a second."""
    queue = f"registry-probe-{uuid.uuid4().hex[:8]}"
    command = worker_command(hostname=f"{queue}@%h", beat_schedule=None, queues=queue, concurrency=1)
    with (tmp_path / "worker.log").open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, "MODELPRESS_WORKER_HEARTBEAT_S": "0.5"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    yield process
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def test_a_worker_registers_and_beats(probe_worker: subprocess.Popen[bytes]) -> None:
    row = _wait_row(probe_worker.pid)
    assert row.queues.startswith("registry-probe-") and row.pool == WorkerPool.CPU
    # The hardware it probed at start: this machine's cores, its torch, and no GPU on a CPU box.
    assert row.hardware["cores"] == os.cpu_count()
    assert row.hardware["torch_version"] and row.hardware["cpu_model"]
    assert (
        row.gpu_name == row.hardware["gpu_name"] and row.tensorrt_version == row.hardware["tensorrt_version"]
    )
    deadline = time.monotonic() + 20
    while (later := _row(probe_worker.pid)) is not None and later.last_seen <= row.last_seen:
        assert time.monotonic() < deadline, "last_seen never advanced"
        time.sleep(0.2)
    assert later is not None and later.started_at == row.started_at
    with new_session() as session:
        assert registry.live_count(session, timeout_s=5) >= 1


def test_a_sigkilled_worker_ages_out_and_is_pruned(probe_worker: subprocess.Popen[bytes]) -> None:
    row = _wait_row(probe_worker.pid)
    os.killpg(probe_worker.pid, signal.SIGKILL)
    probe_worker.wait(timeout=10)
    time.sleep(2.5)
    with new_session() as session:
        stale = session.get(Worker, row.id)
        assert stale is not None, "nothing removes a killed worker's row at once"
        seen_recently = session.scalar(
            select(Worker.id).where(Worker.id == row.id, Worker.last_seen >= utcnow() - timedelta(seconds=2))
        )
        assert seen_recently is None
        assert registry.prune(session, timeout_s=2) >= 1
    assert _row(probe_worker.pid) is None


def test_a_worker_that_stops_cleanly_removes_its_row(probe_worker: subprocess.Popen[bytes]) -> None:
    _wait_row(probe_worker.pid)
    probe_worker.terminate()
    probe_worker.wait(timeout=60)
    assert _row(probe_worker.pid) is None


def test_only_a_gpu_only_worker_is_in_the_gpu_pool() -> None:
    assert registry.pool_for(["gpu"]) == WorkerPool.GPU
    assert registry.pool_for(["cpu", "gpu"]) == WorkerPool.CPU
    assert registry.pool_for(["cpu"]) == WorkerPool.CPU


@pytest.mark.parametrize("technique", ["prune.structured", "distill", "quantize.qat"])
def test_training_steps_go_to_the_gpu_pool_while_a_gpu_worker_is_alive(technique: str) -> None:
    from service.catalog.base import Queue
    from service.workers.capability import pool_for_step

    assert pool_for_step(technique, gpu_available=True) == Queue.GPU
    assert pool_for_step(technique, gpu_available=False) == Queue.CPU
    assert pool_for_step("quantize.dynamic", gpu_available=True) == Queue.CPU


def test_housekeeping_runs_on_every_beat_and_its_failure_does_not_stop_the_heartbeat(database: str) -> None:
    from service.workers.heartbeat import Heartbeat

    calls: list[float] = []

    def housekeeping() -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise OSError("scratch folder vanished")

    heartbeat = Heartbeat(["housekeeping-probe"], interval_s=0.2, timeout_s=30, on_beat=housekeeping)
    heartbeat.start()
    try:
        with new_session() as session:
            first = session.get(Worker, heartbeat.worker_id)
            assert first is not None
            registered = first.last_seen
        deadline = time.monotonic() + 10
        while len(calls) < 3:
            assert time.monotonic() < deadline, "housekeeping stopped after its first failure"
            time.sleep(0.05)
        with new_session() as session:
            later = session.get(Worker, heartbeat.worker_id)
            assert later is not None and later.last_seen > registered
    finally:
        heartbeat.stop()
    with new_session() as session:
        assert session.get(Worker, heartbeat.worker_id) is None
