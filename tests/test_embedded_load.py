"""The embedded server under 50 concurrent clients while a job runs: no errors, nothing hangs.

A loose guard (any error, or any request slower than 5 s, fails); the figures are bench/load.py's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.load_servers import embedded

CLIENTS = 50
DURATION_S = 5.0
SLOWEST_ALLOWED_S = 5.0


def _poll(url: str, headers: dict[str, str], paths: list[str], results: list[tuple[str, int, float]]) -> None:
    deadline = time.monotonic() + DURATION_S
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        while time.monotonic() < deadline:
            for path in paths:
                started = time.monotonic()
                try:
                    status = client.get(path).status_code
                except httpx.HTTPError:
                    status = 0
                results.append((path, status, time.monotonic() - started))


def _submit_and_cancel(
    url: str, headers: dict[str, str], body: dict[str, object], results: list[tuple[str, int, float]]
) -> None:
    deadline = time.monotonic() + DURATION_S
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        while time.monotonic() < deadline:
            started = time.monotonic()
            created = client.post("/v1/jobs", json=body)
            results.append(("POST /v1/jobs", created.status_code, time.monotonic() - started))
            if created.status_code == 202:
                started = time.monotonic()
                cancelled = client.post(f"/v1/jobs/{created.json()['id']}/cancel")
                results.append(("POST cancel", cancelled.status_code, time.monotonic() - started))
            time.sleep(0.2)


@pytest.fixture
def loaded_server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`modelpress serve` in a fresh home, its log in a file (a pipe nobody reads would fill)."""
    with embedded(
        tmp_path / "var", MODELPRESS_BENCH_TIME_BUDGET_S="0.3", MODELPRESS_BENCH_MIN_RUNS="5"
    ) as server:
        yield server


def test_fifty_clients_poll_while_a_job_runs(loaded_server: tuple[str, str], mlp_onnx: Path) -> None:
    url, key = loaded_server
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        with mlp_onnx.open("rb") as handle:
            model = client.post("/v1/models", files={"file": ("mlp.onnx", handle)}).json()
        writes = {"model_id": model["id"], "steps": [{"technique": "quantize.dynamic"}]}
        job = client.post("/v1/jobs", json=writes)
        assert job.status_code == 202, job.text
    paths = [f"/v1/jobs/{job.json()['id']}", "/v1/jobs"]
    results: list[tuple[str, int, float]] = []
    threads = [threading.Thread(target=_poll, args=(url, headers, paths, results)) for _ in range(CLIENTS)]
    threads.append(threading.Thread(target=_submit_and_cancel, args=(url, headers, writes, results)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not any(thread.is_alive() for thread in threads), "a client hung"
    errors = [(path, status) for path, status, _ in results if status not in (200, 202)]
    slowest = max(duration for _, _, duration in results)
    assert len(results) > CLIENTS, len(results)
    assert not errors, errors[:10]
    assert slowest < SLOWEST_ALLOWED_S, slowest
