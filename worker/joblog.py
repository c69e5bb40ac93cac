"""The structured log of one job attempt: lines buffered in memory, written under the job's lease."""

from __future__ import annotations

import math
from typing import Any

from engine.errortext import log_text
from service.db import utcnow
from service.jobs import logs
from worker import records
from worker.lease import Lease

# A chatty technique (a progress line per batch) must not fill the table: past this, one warning.
MAX_LINES_PER_STEP = 500


class JobLog:
    """Lines a client reads from GET /v1/jobs/{id}/logs; nothing is written once the lease is lost."""

    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        self._pending: list[logs.LogLine] = []
        self._per_step: dict[int | None, int] = {}

    def info(self, message: str, *, step: int | None = None, **fields: Any) -> None:
        """Record an informational line."""
        self.add("info", message, step=step, **fields)

    def warning(self, message: str, *, step: int | None = None, **fields: Any) -> None:
        """Record a line about something the user should look at."""
        self.add("warning", message, step=step, **fields)

    def error(self, message: str, *, step: int | None = None, **fields: Any) -> None:
        """Record why a step or the job failed."""
        self.add("error", message, step=step, **fields)

    def add(self, level: str, message: str, *, step: int | None = None, **fields: Any) -> None:
        """Buffer a line; its text is cleaned of paths and control characters first."""
        count = self._per_step.get(step, 0) + 1
        self._per_step[step] = count
        if count > MAX_LINES_PER_STEP + 1:
            return
        if count == MAX_LINES_PER_STEP + 1:
            level, fields = "warning", {}
            message = f"more than {MAX_LINES_PER_STEP} lines; the rest are left out"
        self._pending.append(
            logs.LogLine(
                time=utcnow(),
                level=level,
                message=log_text(message),
                step=step,
                fields={name: _clean(value) for name, value in fields.items()},
            )
        )

    def flush(self) -> None:
        """Write the buffered lines in their own transaction (LeaseLost: nothing is written)."""
        if not self._pending:
            return
        records.call(
            logs.append_fenced, job_id=self.lease.job_id, token=self.lease.token, lines=self._pending
        )
        self._pending = []


def _clean(value: Any) -> Any:
    """Numbers, booleans, ids, short texts or lists of them; texts are cleaned like messages."""
    if isinstance(value, list | tuple):
        return [_clean(item) for item in value[:50]]
    if isinstance(value, str):
        return log_text(value, limit=200)
    if isinstance(value, float):
        return value if math.isfinite(value) else None  # JSON (and Postgres) has no NaN
    if value is None or isinstance(value, bool | int):
        return value
    return log_text(str(value), limit=200)
