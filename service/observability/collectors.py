"""Scrape-time figures from the database and the broker (workers are other processes)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import redis
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from service.db import new_session
from service.jobs.orm import Job, JobStatus, JobStep
from service.settings import get_settings

log = logging.getLogger("modelpress.metrics")

STEP_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
QUEUES = ("cpu", "gpu")
# kombu's Redis transport keeps priority levels in sibling lists named queue + "\x06\x16" + level.
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


def _duration_seconds(session: Session) -> Any:
    if session.get_bind().dialect.name == "sqlite":
        return (func.julianday(JobStep.finished_at) - func.julianday(JobStep.started_at)) * 86400.0
    return func.extract("epoch", JobStep.finished_at - JobStep.started_at)


def jobs_by_status(session: Session) -> dict[str, int]:
    """How many jobs are in each state (every state listed, zero included)."""
    counts = {status.value: 0 for status in JobStatus}
    for status, count in session.execute(select(Job.status, func.count()).group_by(Job.status)):
        counts[status] = count
    return counts


def step_duration_histograms(session: Session) -> list[dict[str, Any]]:
    """Per technique and outcome: cumulative bucket counts, count and sum of step durations."""
    duration = _duration_seconds(session)
    buckets = [func.sum(case((duration <= bound, 1), else_=0)) for bound in STEP_BUCKETS]
    statement = (
        select(JobStep.technique, JobStep.status, func.count(), func.sum(duration), *buckets)
        .where(JobStep.started_at.is_not(None), JobStep.finished_at.is_not(None))
        .group_by(JobStep.technique, JobStep.status)
    )
    rows = []
    for technique, status, count, total, *cumulative in session.execute(statement):
        bucket_pairs = [(str(bound), int(n or 0)) for bound, n in zip(STEP_BUCKETS, cumulative, strict=True)]
        rows.append(
            {
                "technique": technique,
                "status": status,
                "buckets": [*bucket_pairs, ("+Inf", int(count))],
                "sum": float(total or 0.0),
            }
        )
    return rows


def queue_depths(broker_url: str, queues: tuple[str, ...] = QUEUES) -> dict[str, int] | None:
    """Messages waiting in each queue; None when the broker is not Redis."""
    if not broker_url.startswith(("redis://", "rediss://")):
        return None
    client = redis.Redis.from_url(broker_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        return {
            queue: sum(int(client.llen(queue + suffix)) for suffix in _PRIORITY_SUFFIXES) for queue in queues
        }
    finally:
        client.close()


class StateCollector(Collector):
    """Jobs by state, step durations by technique and queue depth, read fresh on every scrape."""

    def collect(self) -> Iterator[Any]:
        """Yield the metric families; a dependency that does not answer is reported as down."""
        up = GaugeMetricFamily(
            "modelpress_dependency_up", "Whether the scrape could read this dependency", labels=["dependency"]
        )
        try:
            with new_session() as session:
                counts = jobs_by_status(session)
                histograms = step_duration_histograms(session)
        except Exception as exc:  # a scrape must not fail because the database is away
            log.warning("metrics: database unavailable: %s", exc)
            up.add_metric(["database"], 0)
        else:
            up.add_metric(["database"], 1)
            jobs = GaugeMetricFamily("modelpress_jobs", "Jobs in each state", labels=["status"])
            for status, count in counts.items():
                jobs.add_metric([status], count)
            yield jobs
            steps = HistogramMetricFamily(
                "modelpress_step_duration_seconds",
                "Wall time of finished job steps, by technique and outcome",
                labels=["technique", "status"],
            )
            for row in histograms:
                steps.add_metric([row["technique"], row["status"]], row["buckets"], row["sum"])
            yield steps
        yield from self._queues(up)
        yield up

    def _queues(self, up: GaugeMetricFamily) -> Iterator[Any]:
        try:
            depths = queue_depths(get_settings().resolved_broker_url)
        except Exception as exc:  # same: report the broker as down, keep the rest of the scrape
            log.warning("metrics: broker unavailable: %s", exc)
            up.add_metric(["broker"], 0)
            return
        if depths is None:
            return
        up.add_metric(["broker"], 1)
        depth = GaugeMetricFamily(
            "modelpress_queue_depth", "Messages waiting in a Celery queue", labels=["queue"]
        )
        for queue, value in depths.items():
            depth.add_metric([queue], value)
        yield depth
