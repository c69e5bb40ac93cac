"""Job leases: claim with a conditional UPDATE, renew by heartbeat, fence every write."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import update

from service.db import new_session, utcnow
from service.jobs.orm import Job, JobStatus


class LeaseLost(Exception):
    """Another attempt owns the job now (or it was finished elsewhere); stop without writing."""


class Lease:
    """The right of one attempt to write to one job, identified by a random token."""

    def __init__(self, job_id: uuid.UUID, seconds: int) -> None:
        self.job_id = job_id
        self.seconds = seconds
        self.token = uuid.uuid4().hex
        self.cancel_requested = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def claim(self, max_attempts: int) -> bool:
        """Take a queued job; False when it is not queued (a duplicate delivery) or out of attempts."""
        now = utcnow()
        with new_session() as session:
            result = session.execute(
                update(Job)
                .where(
                    Job.id == self.job_id,
                    Job.status == JobStatus.QUEUED,
                    Job.attempts < max_attempts,
                    Job.cancel_requested.is_(False),
                )
                .values(
                    status=JobStatus.RUNNING,
                    attempts=Job.attempts + 1,
                    lease_token=self.token,
                    lease_expires_at=now + timedelta(seconds=self.seconds),
                    stage="starting",
                )
            )
            session.commit()
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def write(self, **values: Any) -> None:
        """Update the job only while this lease holds it."""
        with new_session() as session:
            self.write_in(session, **values)
            session.commit()

    def write_in(self, session: Any, **values: Any) -> None:
        """The fenced update inside a caller's transaction (the caller commits)."""
        result = session.execute(
            update(Job).where(Job.id == self.job_id, Job.lease_token == self.token).values(**values)
        )
        if not result.rowcount:
            raise LeaseLost(str(self.job_id))

    def renew(self) -> None:
        """Extend the lease and pick up a cancel request."""
        with new_session() as session:
            result = session.execute(
                update(Job)
                .where(Job.id == self.job_id, Job.lease_token == self.token, Job.status == JobStatus.RUNNING)
                .values(lease_expires_at=utcnow() + timedelta(seconds=self.seconds))
                .returning(Job.cancel_requested)
            )
            row = result.first()
            session.commit()
        if row is None:
            raise LeaseLost(str(self.job_id))
        self.cancel_requested = bool(row[0])

    def start_heartbeat(self) -> None:
        """Renew every third of the lease in a background thread until stopped."""
        self._thread = threading.Thread(target=self._beat, name=f"lease-{self.job_id}", daemon=True)
        self._thread.start()

    def stop_heartbeat(self) -> None:
        """Stop renewing."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _beat(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                self.renew()
            except LeaseLost:
                self.cancel_requested = True  # stop the child; nothing it produces may be written
                return
            except Exception:  # a database blip: keep beating, the lease has slack
                continue
