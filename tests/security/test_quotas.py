"""Per-tenant quotas on a real server: stored bytes answer 413, active jobs 429, both with Retry-After."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.chaos.live import LiveApi, drop_tenant, other_workers_paused, start_api, stop_api
from tests.figures import record
from tests.fixtures.api import new_key

PROBLEMS = "https://modelpress.dev/problems/"
JOB_LIMIT = 2


@pytest.fixture(scope="module")
def model_bytes(mlp_onnx: Path) -> bytes:
    return mlp_onnx.read_bytes()


@pytest.fixture(scope="module")
def server(
    database: str, broker: str, model_bytes: bytes, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveApi]:
    # Workers paused: queued jobs stay queued and uploads are not ingested, so the counts hold still.
    quota = 2 * len(model_bytes) + len(model_bytes) // 2
    with other_workers_paused():
        api = start_api(
            tmp_path_factory.mktemp("quotas") / "api.log",
            MODELPRESS_QUOTA_STORAGE_BYTES=str(quota),
            MODELPRESS_QUOTA_CONCURRENT_JOBS=str(JOB_LIMIT),
        )
        try:
            yield api
        finally:
            stop_api(api)


@pytest.fixture
def client(server: LiveApi) -> Iterator[httpx.Client]:
    key = new_key()
    with server.client(key) as tenant:
        yield tenant
    drop_tenant(key)


def _upload(client: httpx.Client, content: bytes) -> httpx.Response:
    return client.post("/v1/models", files={"file": ("model.onnx", content)})


def _assert_problem(response: httpx.Response, status: int, slug: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == PROBLEMS + slug
    assert int(response.headers["retry-after"]) > 0


def test_storage_quota_refuses_what_does_not_fit_and_frees_on_delete(
    client: httpx.Client, model_bytes: bytes
) -> None:
    first, second = _upload(client, model_bytes), _upload(client, model_bytes)
    over = _upload(client, model_bytes)  # half of it fits: refused while streaming
    small = _upload(client, model_bytes[: len(model_bytes) // 2])  # exactly what is left
    full = _upload(client, model_bytes[:64])  # nothing left: refused before reading
    deleted = client.delete(f"/v1/models/{first.json()['id']}")
    after_delete = _upload(client, model_bytes)

    assert (first.status_code, second.status_code, small.status_code) == (201, 201, 201)
    _assert_problem(over, 413, "storage-quota-exceeded")
    _assert_problem(full, 413, "storage-quota-exceeded")
    assert over.json()["quota_bytes"] > over.json()["used_bytes"] > 0
    assert deleted.status_code == 204
    assert after_delete.status_code == 201, after_delete.text
    names = [item["id"] for item in client.get("/v1/models").json()["items"]]
    assert len(names) == 3  # second, small and after_delete: the refused uploads left no model


def test_active_job_quota_is_exact_under_concurrency(client: httpx.Client, model_bytes: bytes) -> None:
    model = _upload(client, model_bytes).json()

    def body(batch: int) -> dict[str, object]:
        return {
            "model_id": model["id"],
            "steps": [{"technique": "quantize.dynamic"}],
            "evaluation": {"batch_sizes": [batch]},
        }

    accepted = [
        client.post("/v1/jobs", json=body(i + 1), headers={"Idempotency-Key": f"j{i}"}) for i in range(2)
    ]
    refused = client.post("/v1/jobs", json=body(3))
    replay = client.post("/v1/jobs", json=body(1), headers={"Idempotency-Key": "j0"})
    for job in accepted:
        assert client.post(f"/v1/jobs/{job.json()['id']}/cancel").json()["status"] == "cancelled"
    start = threading.Barrier(6)

    def submit(batch: int) -> int:
        start.wait()
        return client.post("/v1/jobs", json=body(batch + 10)).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        burst = sorted(pool.map(submit, range(6)))

    assert [job.status_code for job in accepted] == [202, 202]
    _assert_problem(refused, 429, "too-many-jobs")
    assert replay.status_code == 202 and replay.json()["id"] == accepted[0].json()["id"]
    assert burst == [202] * JOB_LIMIT + [429] * (6 - JOB_LIMIT)
    record(
        "quotas",
        {
            "concurrent job limit (test setting)": JOB_LIMIT,
            "burst of simultaneous submissions": 6,
            "accepted in the burst": burst.count(202),
            "answered 429 in the burst": burst.count(429),
            "storage quota answers": "413 storage-quota-exceeded, before reading when full, while streaming"
            " when the upload outgrows what is left",
        },
    )
