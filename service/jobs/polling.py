"""What makes polling a job cheap: an ETag on its document, 304 when unchanged, Retry-After hints.

The ETag is a hash of the exact bytes sent, so it changes whenever anything a client sees
changes (status, stage, progress, a step's metrics) and never otherwise.
"""

from __future__ import annotations

import hashlib

from fastapi import Response

from service.jobs.orm import JobStatus
from service.jobs.schemas import JobRead

# Seconds a poller should wait before asking again: a queued job waits for a worker, a running
# one reports progress every few seconds. Finished jobs never change, so they carry no hint.
RETRY_AFTER_S = {JobStatus.QUEUED.value: 5, JobStatus.RUNNING.value: 2}
CACHE_CONTROL = "no-cache"  # caches may keep the document but must revalidate it (ETag) each time


def retry_after(status: str) -> dict[str, str]:
    """The Retry-After header for a job in this state, if it may still change."""
    seconds = RETRY_AFTER_S.get(status)
    return {"Retry-After": str(seconds)} if seconds is not None else {}


def entity_tag(body: bytes) -> str:
    """A strong ETag of a response body."""
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def matches(if_none_match: str | None, etag: str) -> bool:
    """Whether If-None-Match names this ETag (weak comparison, as RFC 9110 asks for this header)."""
    if not if_none_match:
        return False
    candidates = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in candidates or etag in candidates


def job_response(job: JobRead, if_none_match: str | None) -> Response:
    """The job document, or 304 Not Modified when the client already holds this version."""
    body = job.model_dump_json().encode()
    etag = entity_tag(body)
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL, **retry_after(job.status)}
    if matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)
