"""The periodic sweeper: recover jobs whose worker died and messages the broker lost."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

from service.artifacts.service import collect_garbage
from service.db import utcnow
from service.failures import MaxAttempts
from service.jobs import recovery, stranded
from service.jobs.deletion import purge_finished
from service.models import lifecycle as models_lifecycle
from service.settings import Settings
from service.storage import get_store
from worker import records

log = logging.getLogger("modelpress.sweeper")
_last_collection = 0.0  # monotonic time of this process's last store garbage collection


def sweep(settings: Settings) -> dict[str, int]:
    """One pass; returns counts of what it did (for logs and tests)."""
    now = utcnow()
    counts = records.call(
        recovery.expire_leases, now=now, max_attempts=settings.max_attempts, lost_error=_worker_lost
    )
    counts["cancelled"] = records.call(recovery.cancel_requested)
    # A lease and a sweep after its pool's last worker died, a GPU job fails instead of waiting forever.
    counts.update(
        records.call(
            stranded.resolve,
            stale_before=now - timedelta(seconds=settings.lease_seconds),
            timeout_s=settings.worker_timeout_s,
        )
    )
    stale = now - timedelta(seconds=settings.requeue_after_s)
    counts["published"] = records.call(recovery.republish_lost, stale_before=stale)
    counts["ingests"] = records.call(
        models_lifecycle.republish_lost,
        stale_before=stale,
        stuck_before=now - timedelta(seconds=settings.ingest_timeout_s + 60),
        max_attempts=settings.max_attempts,
        exhausted_error=_ingest_exhausted,
    )
    counts.update(_clean_up(settings, now))
    if any(counts.values()):
        log.info("sweep %s", counts)
    return counts


def _worker_lost(attempts: int) -> dict[str, Any]:
    return MaxAttempts(
        f"the job's worker was lost on each of {attempts} attempts", attempts=attempts
    ).to_document()


def _ingest_exhausted(attempts: int) -> dict[str, Any]:
    return MaxAttempts(f"ingest did not finish in {attempts} attempts").to_document()


def _clean_up(settings: Settings, now: datetime) -> dict[str, int]:
    """Jobs past the retention period, then (now and then) stored files no row names any more."""
    global _last_collection
    counts = {"purged": 0, "collected": 0}
    if settings.job_retention_days > 0:
        cutoff = now - timedelta(days=settings.job_retention_days)
        counts["purged"] = records.call(purge_finished, finished_before=cutoff)
    if time.monotonic() - _last_collection >= settings.store_gc_interval_s:
        _last_collection = time.monotonic()
        counts["collected"] = records.call(
            collect_garbage, store=get_store(), grace_s=settings.store_gc_grace_s
        )
    return counts
