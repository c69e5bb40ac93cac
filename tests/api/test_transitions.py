"""Job transitions in the jobs domain: fenced by the lease token, each one committed whole or not at all."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from service.db import new_session, utcnow
from service.jobs import lifecycle
from service.jobs.orm import Job, JobStatus
from tests.api.test_deletion import finished_job
from tests.fixtures.api import Api

TOKEN = "a" * 32


@pytest.fixture
def held_job(api: Api, mlp_onnx: Path) -> Iterator[uuid.UUID]:
    """A finished job put back to running under TOKEN, with a lease no sweeper will expire."""
    model = api.wait_model(api.upload("models", mlp_onnx).json()["id"])
    job_id = uuid.UUID(finished_job(api, model)["id"])
    with new_session() as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                status=JobStatus.RUNNING,
                lease_token=TOKEN,
                lease_expires_at=utcnow() + timedelta(hours=1),
                finished_at=None,
            )
        )
        session.commit()
    yield job_id
    with new_session() as session:  # ended, so that no worker or sweeper picks it up after the test
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(status=JobStatus.FAILED, lease_token=None, lease_expires_at=None)
        )
        session.commit()


def _row(job_id: uuid.UUID) -> Job:
    with new_session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def _call(operation: Any, **arguments: Any) -> Any:
    with new_session() as session:
        return operation(session=session, **arguments)


def test_a_stale_attempt_writes_nothing(held_job: uuid.UUID) -> None:
    before = _row(held_job)

    with pytest.raises(lifecycle.LeaseLost):
        _call(lifecycle.advance, job_id=held_job, token="b" * 32, stage="stale")
    with pytest.raises(lifecycle.LeaseLost):
        _call(lifecycle.finish, job_id=held_job, status=JobStatus.FAILED, token="b" * 32, error={"x": 1})
    assert not _call(lifecycle.requeue, job_id=held_job, token="b" * 32, stage="stale", refund_attempt=True)

    after = _row(held_job)
    assert (after.status, after.stage, after.error, after.attempts) == (
        before.status,
        before.stage,
        before.error,
        before.attempts,
    )


def test_the_lease_holder_advances_then_finishes_once(held_job: uuid.UUID) -> None:
    first_start = _row(held_job).started_at

    _call(lifecycle.advance, job_id=held_job, token=TOKEN, stage="step 1/1", progress=0.25, started=True)
    advanced = _row(held_job)
    _call(lifecycle.finish, job_id=held_job, status=JobStatus.FAILED, token=TOKEN, error={"type": "t"})
    finished = _row(held_job)

    assert (advanced.stage, advanced.progress, advanced.started_at) == ("step 1/1", 0.25, first_start)
    assert (finished.status, finished.stage, finished.error) == ("failed", "failed", {"type": "t"})
    assert finished.lease_token is None and finished.lease_expires_at is None
    assert finished.finished_at is not None
    with pytest.raises(lifecycle.LeaseLost):  # the lease ended with the job
        _call(lifecycle.finish, job_id=held_job, status=JobStatus.SUCCEEDED, token=TOKEN)


def test_a_requeue_for_a_pending_model_gives_the_attempt_back(held_job: uuid.UUID) -> None:
    attempts = _row(held_job).attempts

    assert _call(lifecycle.requeue, job_id=held_job, token=TOKEN, stage="waiting", refund_attempt=True)

    job = _row(held_job)
    assert (job.status, job.stage, job.attempts, job.lease_token) == ("queued", "waiting", attempts - 1, None)
    assert job.enqueued_at is not None  # ingest publishes it; the sweeper leaves it alone meanwhile
