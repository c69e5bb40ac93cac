"""A job's structured log lines: appended by the worker under its lease, read in pages, oldest first."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.errors import InvalidRequest
from service.jobs import lifecycle
from service.jobs.orm import FINAL_STATUSES, JobLogLine
from service.jobs.service import get_job
from service.pagination import decode_opaque, encode_opaque

MAX_CURSOR_CHARS = 64


@dataclass(frozen=True)
class LogLine:
    """A line before it is stored: when, how severe, which step (None: the job itself), what."""

    time: datetime
    level: str
    message: str
    step: int | None = None
    fields: dict[str, Any] = field(default_factory=dict)


def next_seq(*, session: Session, job_id: uuid.UUID) -> int:
    """The sequence number the job's next line gets (lines of earlier attempts come first)."""
    last = session.scalar(select(func.max(JobLogLine.seq)).where(JobLogLine.job_id == job_id))
    return 0 if last is None else last + 1


def append_lines(*, session: Session, job_id: uuid.UUID, first_seq: int, lines: Sequence[LogLine]) -> None:
    """Add lines numbered from first_seq; the caller holds the job's lease and commits."""
    session.add_all(
        JobLogLine(
            job_id=job_id,
            seq=first_seq + offset,
            created_at=line.time,
            level=line.level,
            step=line.step,
            message=line.message,
            fields=line.fields,
        )
        for offset, line in enumerate(lines)
    )


def append_fenced(*, session: Session, job_id: uuid.UUID, token: str, lines: Sequence[LogLine]) -> None:
    """Append an attempt's lines and commit, only while `token` holds the job's lease (else LeaseLost)."""
    lifecycle.fence(session=session, job_id=job_id, token=token)  # a stale attempt writes nothing
    append_lines(
        session=session, job_id=job_id, first_seq=next_seq(session=session, job_id=job_id), lines=lines
    )
    session.commit()


def encode_cursor(seq: int) -> str:
    """An opaque cursor pointing after the line with this sequence number."""
    return encode_opaque({"after": seq})


def decode_cursor(cursor: str) -> int:
    """Inverse of encode_cursor; anything else is the client's error (422)."""
    invalid = InvalidRequest("the cursor is not valid; use next_cursor from a previous page of these logs")
    decoded = decode_opaque(cursor, invalid, MAX_CURSOR_CHARS)
    after = decoded.get("after") if isinstance(decoded, dict) else None
    if not isinstance(after, int) or isinstance(after, bool) or after < -1:
        raise invalid
    return after


def log_page(
    *,
    session: Session,
    tenant_id: uuid.UUID,
    job_id: uuid.UUID,
    cursor: str | None,
    limit: int,
    step: int | None = None,
) -> dict[str, Any]:
    """One page of a tenant's job's lines, oldest first.

    `next_cursor` is null only when no line is left and the job has ended: while it runs, the
    last page still carries a cursor from which its later lines can be read.
    """
    job = get_job(session=session, tenant_id=tenant_id, job_id=job_id)
    after = decode_cursor(cursor) if cursor else -1
    statement = select(JobLogLine).where(JobLogLine.job_id == job_id, JobLogLine.seq > after)
    if step is not None:
        statement = statement.where(JobLogLine.step == step)
    rows = list(session.scalars(statement.order_by(JobLogLine.seq).limit(limit + 1)))
    more, rows = len(rows) > limit, rows[:limit]
    last_seq = rows[-1].seq if rows else after
    following = more or job.status not in FINAL_STATUSES
    return {
        "items": [line_document(row) for row in rows],
        "next_cursor": encode_cursor(last_seq) if following else None,
    }


def line_document(row: JobLogLine) -> dict[str, Any]:
    """A stored line as clients see it."""
    return {
        "seq": row.seq,
        "time": row.created_at,
        "level": row.level,
        "step": row.step,
        "message": row.message,
        "fields": row.fields or {},
    }
