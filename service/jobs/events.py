"""Server-Sent Events for one job: its document first, then what changes as it changes, until it ends."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from service.db import new_session
from service.errors import NotFound
from service.jobs import service as jobs_service
from service.jobs.orm import FINAL_STATUSES
from service.jobs.schemas import JobRead

POLL_S = 0.5
KEEPALIVE_S = 15.0
# A stream ends after this long even if the job has not; EventSource clients reconnect by themselves.
MAX_STREAM_S = 3600.0
PROGRESS_FIELDS = ("status", "stage", "progress")
STEP_FIELDS = ("status", "metrics", "warnings", "error", "artifact_id")


def snapshot(job_id: uuid.UUID, tenant_id: uuid.UUID) -> dict[str, Any] | None:
    """The job document as GET /v1/jobs/{id} returns it, or None once the job is gone."""
    with new_session() as session:
        try:
            job = jobs_service.get_job(session=session, tenant_id=tenant_id, job_id=job_id)
        except NotFound:
            return None
        return JobRead.model_validate(job).model_dump(mode="json")


def changes(previous: dict[str, Any] | None, current: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The events between two snapshots: `job` first, then `progress` and `step`, `end` when final."""
    events: list[tuple[str, dict[str, Any]]] = []
    if previous is None:
        events.append(("job", current))
    else:
        if any(previous[name] != current[name] for name in PROGRESS_FIELDS):
            events.append(("progress", {name: current[name] for name in PROGRESS_FIELDS}))
        for before, after in zip(previous["steps"], current["steps"], strict=True):
            if any(before[name] != after[name] for name in STEP_FIELDS):
                events.append(("step", after))
    if current["status"] in FINAL_STATUSES:
        events.append(("end", current))
    return events


def encode(name: str, data: dict[str, Any], event_id: int) -> bytes:
    """One event in the text/event-stream format (JSON data on one line)."""
    return f"id: {event_id}\nevent: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def stream(request: Request, job_id: uuid.UUID, tenant_id: uuid.UUID) -> AsyncIterator[bytes]:
    """Poll the database and send what changed until the job ends, the client leaves or time is up."""
    previous: dict[str, Any] | None = None
    sent, quiet_since, deadline = 0, time.monotonic(), time.monotonic() + MAX_STREAM_S
    while time.monotonic() < deadline and not await request.is_disconnected():
        current = await run_in_threadpool(snapshot, job_id, tenant_id)
        if current is None:
            sent += 1
            yield encode("gone", {"id": str(job_id), "detail": "the job was deleted"}, sent)
            return
        for name, data in changes(previous, current):
            sent += 1
            quiet_since = time.monotonic()
            yield encode(name, data, sent)
        if current["status"] in FINAL_STATUSES:
            return
        previous = current
        if time.monotonic() - quiet_since > KEEPALIVE_S:
            quiet_since = time.monotonic()
            yield b": keep-alive\n\n"  # a comment: proxies see traffic, clients ignore it
        await asyncio.sleep(POLL_S)
