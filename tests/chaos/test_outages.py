"""Restart Redis, then Postgres, while jobs run: no job lost, no duplicate artifact, no 500.

The servers restarted here are this module's own (tests/chaos/private_stack.py: a private Postgres
cluster and redis-server on free loopback ports, with their own worker and API); each test checks
that its private server did restart and that the shared servers the rest of the session uses did
not. Redis keeps nothing on disk: its restart loses every queued message, and the sweeper must
publish those jobs again from Postgres.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from service.artifacts.orm import Artifact
from tests.chaos import shared_servers
from tests.chaos.load import Hammer
from tests.chaos.private_stack import PrivateStack, private_stack
from tests.figures import record

FINAL = {"succeeded", "failed", "cancelled"}
JOBS = 6
OUTAGE_S = 4.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateStack]:
    """Private Postgres and Redis with their own worker and API process."""
    with private_stack(tmp_path_factory.mktemp("outages")) as stack:
        yield stack


@pytest.fixture(scope="module")
def tenant(stack: PrivateStack, mlp_onnx: Path, digits_npz: Path) -> dict[str, Any]:
    key = stack.create_key("outages")
    with stack.api.client(key) as client:
        model = client.post("/v1/models", files={"file": ("mlp.onnx", mlp_onnx.read_bytes())}).json()
        dataset = client.post("/v1/datasets", files={"file": ("digits.npz", digits_npz.read_bytes())}).json()
        model = _wait(client, f"/v1/models/{model['id']}", {"ready", "rejected"}, 120)
        assert model["status"] == "ready", model
    return {"key": key, "model": model["id"], "dataset": dataset["id"]}


def _wait(client: httpx.Client, path: str, final: set[str], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            body = client.get(path).json()
            if body.get("status") in final:
                return dict(body)
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{path} did not finish in {timeout}s"
        time.sleep(0.5)


def _submit(client: httpx.Client, tenant: dict[str, Any], epochs: int) -> str:
    finetune = {"dataset_id": tenant["dataset"], "epochs": epochs, "batch_size": 16}
    body = {
        "model_id": tenant["model"],
        "steps": [{"technique": "prune.structured", "params": {"sparsity": 0.5, "finetune": finetune}}],
    }
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _wait_running(client: httpx.Client) -> None:
    deadline = time.monotonic() + 60
    while not client.get("/v1/jobs", params={"status": "running"}).json()["items"]:
        assert time.monotonic() < deadline, "no job started"
        time.sleep(0.2)


def _check_outcome(
    stack: PrivateStack, client: httpx.Client, job_ids: list[str]
) -> tuple[list[dict[str, Any]], list[int]]:
    """Every job finished and succeeded, with exactly one artifact for its one step."""
    jobs = [_wait(client, f"/v1/jobs/{job_id}", FINAL, 240) for job_id in job_ids]
    assert [job["status"] for job in jobs] == ["succeeded"] * len(jobs), [job["error"] for job in jobs]
    counts = []
    with stack.session() as session:
        for job in jobs:
            count = session.scalar(
                select(func.count()).select_from(Artifact).where(Artifact.job_id == uuid.UUID(job["id"]))
            )
            assert count == 1, (job["id"], count)
            assert job["steps"][0]["artifact_id"] == job["artifact_id"]
            counts.append(int(count or 0))
    return jobs, counts


def test_redis_restart_loses_no_job(stack: PrivateStack, tenant: dict[str, Any]) -> None:
    shared, private = shared_servers.shared_identity(), stack.identity()
    with stack.api.client(tenant["key"]) as client:
        job_ids = [_submit(client, tenant, epochs=10) for _ in range(JOBS)]
        _wait_running(client)

        stack.redis.stop()
        stopped = time.monotonic()
        started_call = time.monotonic()
        during = client.post(
            "/v1/jobs",
            json={"model_id": tenant["model"], "steps": [{"technique": "quantize.dynamic"}]},
        )
        submit_seconds = time.monotonic() - started_call
        ready = client.get("/readyz")
        listing = client.get("/v1/jobs")
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped)))
        stack.redis.start()
        restarted = time.monotonic()

        assert during.status_code == 202, during.text
        assert ready.status_code == 503 and ready.json()["checks"]["broker"].startswith("unavailable")
        assert ready.json()["checks"]["database"] == "ok"
        assert listing.status_code == 200
        jobs, artifacts = _check_outcome(stack, client, [*job_ids, during.json()["id"]])
        drained = time.monotonic() - restarted

    # The same probe that saw the private Redis restart sees the shared servers unchanged.
    assert stack.identity()["redis run_id"] != private["redis run_id"]
    assert shared_servers.shared_identity() == shared

    record(
        "redis_restart",
        {
            "jobs run": len(jobs),
            "jobs submitted while Redis was down (202, published later by the sweeper)": 1,
            "seconds POST /v1/jobs took with Redis down": round(submit_seconds, 2),
            "/readyz with Redis down": f"{ready.status_code}: {ready.json()['checks']['broker'][:60]}",
            "Redis down, s": round(restarted - stopped, 1),
            "jobs lost": sum(job["status"] != "succeeded" for job in jobs),
            "artifacts per job (min, max)": [min(artifacts), max(artifacts)],
            "attempts used (max over jobs)": max(job["attempts"] for job in jobs),
            "all jobs done, s after Redis came back": round(drained, 1),
        },
    )


def test_postgres_restart_answers_503_and_recovers(stack: PrivateStack, tenant: dict[str, Any]) -> None:
    shared, private = shared_servers.shared_identity(), stack.identity()
    with stack.api.client(tenant["key"], timeout=30) as client:
        job_ids = [_submit(client, tenant, epochs=10) for _ in range(JOBS)]
        _wait_running(client)
        with (
            stack.api.client(tenant["key"], timeout=30) as hammer_client,
            Hammer(hammer_client, tenant) as hammer,
        ):
            time.sleep(1)
            stack.postgres.stop()
            stopped = time.monotonic()
            time.sleep(OUTAGE_S)
            stack.postgres.start()
            restarted = time.monotonic()
            deadline = restarted + 30
            while not [r for r in hammer.results if r[0] > restarted and r[1] == 200]:
                assert time.monotonic() < deadline, "the API did not recover by itself"
                time.sleep(0.1)
            recovered = min(r[0] for r in hammer.results if r[0] > restarted and r[1] == 200)
        jobs, artifacts = _check_outcome(stack, client, job_ids)

    codes = sorted({code for _, code, _, _ in hammer.results})
    unavailable = [r for r in hammer.results if r[1] == 503]
    failures = [r for r in hammer.results if r[1] in (0, 500)]
    assert not failures, failures
    assert set(codes) <= {200, 422, 503}, codes
    assert unavailable, "no request landed in the outage"
    assert all(r[2] == "application/problem+json" for r in unavailable)
    assert max(r[3] for r in hammer.results) < 15, "a request hung during the outage"
    assert stack.identity()["postgres started"] != private["postgres started"]
    assert shared_servers.shared_identity() == shared
    record(
        "postgres_restart",
        {
            "jobs run": len(jobs),
            "Postgres down, s": round(restarted - stopped, 1),
            "requests during the test": len(hammer.results),
            "answered 503 problem+json": len(unavailable),
            "answered 500": sum(r[1] == 500 for r in hammer.results),
            "status codes seen": codes,
            "slowest answer, s": round(max(r[3] for r in hammer.results), 2),
            "API answering 200 again, s after Postgres started (no API restart)": round(
                recovered - restarted, 2
            ),
            "jobs lost": sum(job["status"] != "succeeded" for job in jobs),
            "artifacts per job (min, max)": [min(artifacts), max(artifacts)],
            "attempts used (max over jobs)": max(job["attempts"] for job in jobs),
        },
    )
