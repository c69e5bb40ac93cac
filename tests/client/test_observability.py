"""GET /metrics in Prometheus format, and JSON logs carrying request and job ids."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families

from service.observability.collectors import queue_depths
from service.settings import get_settings
from tests.client.conftest import LiveServer


def scrape(server: LiveServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics keyed by (name, sorted labels)."""
    response = httpx.get(f"{server.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_count_requests_jobs_steps_and_queues(
    live_server: LiveServer, tenant_key: str, finished_job: dict[str, Any]
) -> None:
    headers = {"Authorization": f"Bearer {tenant_key}"}
    for _ in range(3):
        httpx.get(f"{live_server.url}/v1/jobs/{finished_job['id']}", headers=headers)
    httpx.get(f"{live_server.url}/v1/jobs/00000000-0000-0000-0000-000000000000", headers=headers)
    httpx.get(f"{live_server.url}/no/such/route")

    samples = scrape(live_server)

    job_route = (("method", "GET"), ("route", "/v1/jobs/{job_id}"))
    assert samples[("modelpress_http_requests_total", (*job_route, ("status", "200")))] >= 3
    assert samples[("modelpress_http_requests_total", (*job_route, ("status", "404")))] >= 1
    assert (
        samples[
            (
                "modelpress_http_requests_total",
                (("method", "GET"), ("route", "<unmatched>"), ("status", "404")),
            )
        ]
        >= 1
    )
    assert not any("00000000" in str(labels) for _, labels in samples)  # ids never become labels
    assert samples[("modelpress_jobs", (("status", "succeeded"),))] >= 1
    assert ("modelpress_jobs", (("status", "queued"),)) in samples
    for technique in ("prune.magnitude", "quantize.dynamic"):
        labels = (("status", "succeeded"), ("technique", technique))
        count = samples[("modelpress_step_duration_seconds_count", labels)]
        assert count >= 1
        assert samples[("modelpress_step_duration_seconds_bucket", (("le", "+Inf"), *labels))] == count
        assert samples[("modelpress_step_duration_seconds_sum", labels)] > 0
    assert ("modelpress_queue_depth", (("queue", "cpu"),)) in samples
    assert samples[("modelpress_dependency_up", (("dependency", "database"),))] == 1
    assert samples[("modelpress_dependency_up", (("dependency", "broker"),))] == 1


def test_queue_depth_reads_the_broker_lists() -> None:
    url = get_settings().resolved_broker_url
    broker = redis.Redis.from_url(url)
    queue = "modelpress-test-depth"
    broker.delete(queue, queue + "\x06\x163")
    broker.rpush(queue, "a", "b", "c")
    broker.rpush(queue + "\x06\x163", "d")
    try:
        assert queue_depths(url, (queue, "modelpress-test-empty")) == {queue: 4, "modelpress-test-empty": 0}
        assert queue_depths("filesystem://", (queue,)) is None
    finally:
        broker.delete(queue, queue + "\x06\x163")


def test_request_ids_are_echoed_and_logged_as_json(live_server: LiveServer) -> None:
    given = httpx.get(f"{live_server.url}/healthz", headers={"X-Request-ID": "ci-run-42.step-7"})
    made = httpx.get(f"{live_server.url}/healthz")
    refused = httpx.get(f"{live_server.url}/healthz", headers={"X-Request-ID": "bad id with spaces"})

    assert given.headers["x-request-id"] == "ci-run-42.step-7"
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    assert re.fullmatch(r"[0-9a-f]{32}", refused.headers["x-request-id"])
    lines = [
        json.loads(line) for line in live_server.log_path.read_text().splitlines() if line.startswith("{")
    ]
    logged = [line for line in lines if line.get("request_id") == "ci-run-42.step-7"]
    assert any(
        line["event"] == "request" and line["route"] == "/healthz" and line["status"] == 200
        for line in logged
    )
    assert all({"timestamp", "level", "logger"} <= set(line) for line in logged)


def test_worker_logs_are_json_with_the_job_id(finished_job: dict[str, Any]) -> None:
    log_path = get_settings().home / "worker.log"
    records = []
    for line in log_path.read_text().splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))

    about_job = [record for record in records if record.get("job_id") == finished_job["id"]]
    assert about_job, "no worker log line carries the job id"
    assert all(record["level"] and record["timestamp"] for record in about_job)
