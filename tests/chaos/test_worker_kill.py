"""SIGKILL the worker running a job, twice: the job still succeeds, once, with one artifact per step.

The first kill lands while the step's sandboxed process runs, the second while the next attempt
evaluates (its step artifact already committed). A standby worker takes over each time, as in
production, so the recovery time is the lease running out plus the sweep that re-queues it.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service.artifacts.orm import Artifact
from service.db import new_session
from service.jobs.orm import Job, Metric
from service.settings import get_settings
from tests.chaos.live import other_workers_paused
from tests.chaos.processes import sandbox_children, sigkill_group, wait_gone
from tests.figures import record
from tests.fixtures.api import Api, new_key
from tests.fixtures.infrastructure import start_worker, stop_worker
from worker.results import flatten_metrics

# Twenty seconds of fine-tuning on the digits split, bounded by time rather than epochs so that a
# faster machine (or faster training) still leaves the step running while a standby worker starts.
SLOW_FINETUNE = {"time_budget_s": 20, "batch_size": 16}


class Workers:
    """The test's own workers; all are stopped at the end."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        process = start_worker(self.folder / f"worker-{len(self.started)}.log", concurrency=1)
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.started:
            stop_worker(process)


@pytest.fixture(scope="module")
def workers(database: str, broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    with other_workers_paused():
        pool = Workers(tmp_path_factory.mktemp("kill-workers"))
        try:
            yield pool
        finally:
            pool.stop_all()


def _job(job_id: uuid.UUID) -> Job:
    with new_session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def _wait_for(predicate: Callable[[Job], bool], job_id: uuid.UUID, what: str, timeout: float = 120) -> Job:
    deadline = time.monotonic() + timeout
    while True:
        job = _job(job_id)
        if predicate(job):
            return job
        assert job.status not in ("succeeded", "failed", "cancelled") or what == "finish", (what, job.error)
        assert time.monotonic() < deadline, f"job never reached '{what}': {job.status} {job.stage}"
        time.sleep(0.05)


def _wait_in_sandbox(worker: subprocess.Popen[bytes], job_id: uuid.UUID, stage: str) -> list[int]:
    """Wait until the job's stage starts with `stage` and the worker runs a sandboxed process."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = _job(job_id)
        assert job.status in ("queued", "running"), (job.status, job.error)
        children = sandbox_children(worker.pid)
        if job.stage.startswith(stage) and children:
            return children
        time.sleep(0.05)
    raise AssertionError(f"the job never reached '{stage}' in a sandbox")


def test_job_survives_two_sigkilled_workers(
    workers: Workers, app_client: TestClient, mlp_onnx: Path, digits_npz: Path
) -> None:
    api = Api(app_client, new_key())
    first = workers.start()
    model = api.wait_model(api.upload("models", mlp_onnx).json()["id"])
    dataset = api.upload("datasets", digits_npz).json()
    step = {
        "technique": "prune.structured",
        "params": {"sparsity": 0.5, "finetune": {"dataset_id": dataset["id"], **SLOW_FINETUNE}},
    }
    body: dict[str, Any] = {
        "model_id": model["id"],
        "steps": [step],
        "evaluation": {"dataset_id": dataset["id"], "metric": "top1"},
    }
    submitted = api.post("/v1/jobs", json=body)
    assert submitted.status_code == 202, submitted.text
    job_id = uuid.UUID(submitted.json()["id"])

    # Kill 1: while the step's sandboxed process runs; a standby worker is up before the kill.
    _wait_in_sandbox(first, job_id, "step 1/1")
    second = workers.start()
    step_children = _wait_in_sandbox(first, job_id, "step 1/1")
    killed_at = sigkill_group(first)
    orphans_gone = wait_gone(step_children, timeout=5)
    reclaimed = _wait_for(lambda job: job.attempts == 2 and job.status == "running", job_id, "attempt 2")
    first_recovery_s = time.monotonic() - killed_at

    # Kill 2: while attempt 2 evaluates, after its step artifact was committed.
    third = workers.start()
    eval_children = _wait_in_sandbox(second, job_id, "evaluating")
    killed_again_at = sigkill_group(second)
    _wait_for(lambda job: job.attempts == 3 and job.status == "running", job_id, "attempt 3")
    second_recovery_s = time.monotonic() - killed_again_at
    final = _wait_for(lambda job: job.status in ("succeeded", "failed"), job_id, "finish")
    finished_after_kill_s = time.monotonic() - killed_at

    survivors = [pid for pid in step_children + eval_children if not wait_gone([pid], timeout=5)]
    assert orphans_gone and not survivors, "a sandboxed process outlived its worker"
    assert reclaimed.attempts == 2
    assert final.status == "succeeded", final.error
    assert final.attempts == 3
    with new_session() as session:
        artifacts = session.scalars(select(Artifact).where(Artifact.job_id == job_id)).all()
        metrics = session.scalar(select(func.count()).select_from(Metric).where(Metric.job_id == job_id))
    assert len(artifacts) == 1, [artifact.filename for artifact in artifacts]
    assert final.steps[0].artifact_id == artifacts[0].id == final.artifact_id
    successes = (metrics or 0) / len(flatten_metrics(final.comparison or {}))
    assert successes == 1  # each recorded success writes one full set of metric rows
    settings = get_settings()
    bound = settings.lease_seconds + settings.sweep_interval_s + 10
    assert first_recovery_s < bound and second_recovery_s < bound
    assert third.poll() is None
    record(
        "worker_kill",
        {
            "jobs run": 1,
            "workers SIGKILLed (whole process group)": 2,
            "kill 1 during": "the step's sandboxed fine-tuning",
            "kill 2 during": "evaluation, after the step's artifact was committed",
            "attempts used": final.attempts,
            "artifacts for the step": len(artifacts),
            "succeeded transitions (metric sets written)": successes,
            "sandboxed children left running after their worker died": len(survivors),
            "lease_seconds (tests)": settings.lease_seconds,
            "sweep_interval_s (tests)": settings.sweep_interval_s,
            "recovery after kill 1, s (kill to next attempt running)": round(first_recovery_s, 2),
            "recovery after kill 2, s": round(second_recovery_s, 2),
            "kill 1 to job succeeded, s": round(finished_after_kill_s, 2),
            "bound asserted, s (lease + sweep + 10)": bound,
        },
    )
