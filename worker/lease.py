"""Job leases: claim with a conditional UPDATE, renew by heartbeat, fence every write."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from service.jobs import handover, lifecycle
from service.jobs.lifecycle import LeaseLost
from service.jobs.orm import JobStatus
from worker import records

__all__ = ["Lease", "LeaseLost"]


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
        return records.call(
            lifecycle.claim,
            job_id=self.job_id,
            token=self.token,
            lease_seconds=self.seconds,
            max_attempts=max_attempts,
        )

    def advance(self, stage: str, progress: float | None = None, *, started: bool = False) -> None:
        """Record the stage and progress, only while this lease holds the job."""
        records.call(
            lifecycle.advance,
            job_id=self.job_id,
            token=self.token,
            stage=stage,
            progress=progress,
            started=started,
        )

    def requeue(self, stage: str) -> None:
        """Hand the job back to the queue without counting this attempt (its model is not ingested yet)."""
        if not records.call(
            lifecycle.requeue, job_id=self.job_id, token=self.token, stage=stage, refund_attempt=True
        ):
            raise LeaseLost(str(self.job_id))

    def hand_over(self, queue_name: str, stage: str) -> None:
        """Give the job to another pool's queue, this attempt not counted (its next part runs there)."""
        if not records.call(
            handover.hand_over, job_id=self.job_id, token=self.token, queue_name=queue_name, stage=stage
        ):
            raise LeaseLost(str(self.job_id))

    def finish(
        self,
        status: JobStatus,
        *,
        error: dict[str, Any] | None = None,
        comparison: dict[str, Any] | None = None,
        metrics: list[dict[str, Any]] | None = None,
    ) -> None:
        """End the job (then its webhook is queued), only while this lease holds it."""
        records.call(
            lifecycle.finish,
            job_id=self.job_id,
            status=status,
            token=self.token,
            error=error,
            comparison=comparison,
            metrics=metrics or [],
        )

    def renew(self) -> None:
        """Extend the lease and pick up a cancel request."""
        self.cancel_requested = records.call(
            lifecycle.renew, job_id=self.job_id, token=self.token, lease_seconds=self.seconds
        )

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
