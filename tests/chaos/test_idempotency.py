"""Idempotency-Key against a real uvicorn server: concurrent retries create exactly one resource."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from service.db import new_session
from service.idempotency.orm import IdempotencyKey
from service.jobs.orm import Job
from tests.chaos.live import (
    MULTIPART,
    LiveApi,
    drop_tenant,
    multipart_body,
    other_workers_paused,
    start_api,
    stop_api,
)
from tests.figures import record
from tests.fixtures.api import new_key

PROBLEMS = "https://modelpress.dev/problems/"
CONCURRENT = 50


@pytest.fixture(scope="module")
def server(database: str, broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    # Workers paused: jobs stay queued, so nothing but the requests under test touches the rows.
    with other_workers_paused():
        api = start_api(tmp_path_factory.mktemp("idempotency") / "api.log")
        try:
            yield api
        finally:
            stop_api(api)


@pytest.fixture
def key(server: LiveApi) -> Iterator[str]:
    value = new_key()
    yield value
    drop_tenant(value)


def _upload(client: httpx.Client, content: bytes, key: str | None = None, **fields: str) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return client.post("/v1/models", files={"file": ("model.onnx", content)}, data=fields, headers=headers)


def test_fifty_concurrent_identical_job_requests_make_one_job(
    server: LiveApi, key: str, mlp_onnx: Path
) -> None:
    limits = httpx.Limits(max_connections=CONCURRENT, max_keepalive_connections=CONCURRENT)
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, limits=limits,
                      timeout=60) as client:  # fmt: skip
        model = _upload(client, mlp_onnx.read_bytes()).json()
        body = {"model_id": model["id"], "steps": [{"technique": "quantize.dynamic"}]}
        start = threading.Barrier(CONCURRENT)

        def submit(_: int) -> httpx.Response:
            start.wait()
            return client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "nightly-build-17"})

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=CONCURRENT) as pool:
            responses = list(pool.map(submit, range(CONCURRENT)))
        elapsed = time.monotonic() - started
        listed = client.get("/v1/jobs").json()["items"]

    statuses = sorted({response.status_code for response in responses})
    assert statuses == [202], [response.text for response in responses if response.status_code != 202][:3]
    ids = {response.json()["id"] for response in responses}
    assert len(ids) == 1
    assert [job["id"] for job in listed] == list(ids)
    with new_session() as session:
        rows = session.scalar(
            select(func.count()).select_from(Job).where(Job.idempotency_key == "nightly-build-17")
        )
    assert rows == 1
    record(
        "idempotency",
        {
            "concurrent POST /v1/jobs with one key": CONCURRENT,
            "job rows created": rows,
            "distinct job ids answered": len(ids),
            "status codes": statuses,
            "seconds for the burst": round(elapsed, 2),
        },
    )


def test_upload_replays_refuses_a_different_body_and_a_concurrent_one(
    server: LiveApi, key: str, mlp_onnx: Path
) -> None:
    content = mlp_onnx.read_bytes()
    release = threading.Event()

    def slow_file() -> Iterator[bytes]:
        yield content[:1024]
        release.wait(timeout=30)
        yield content[1024:]

    with server.client(key) as client, ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(
            client.post,
            "/v1/models",
            content=multipart_body(slow_file(), filename="model.onnx", fields={"name": "m"}),
            headers={"Content-Type": MULTIPART, "Idempotency-Key": "upload-1"},
        )
        _wait_for_key("upload-1")
        concurrent = _upload(client, content, "upload-1", name="m")
        release.set()
        original = first.result(timeout=60)
        replay = _upload(client, content, "upload-1", name="m")
        other_bytes = _upload(client, content + b"\0", "upload-1", name="m")
        other_name = _upload(client, content, "upload-1", name="renamed")
        models = client.get("/v1/models").json()["items"]

    assert concurrent.status_code == 409, concurrent.text
    assert concurrent.json()["type"] == PROBLEMS + "idempotency-key-in-use"
    assert int(concurrent.headers["retry-after"]) > 0
    assert original.status_code == 201, original.text
    assert replay.status_code == 201
    assert replay.json()["id"] == original.json()["id"]
    for different in (other_bytes, other_name):
        assert different.status_code == 422, different.text
        assert different.json()["type"] == PROBLEMS + "idempotency-key-reused"
    assert [model["id"] for model in models] == [original.json()["id"]]


def test_concurrent_identical_uploads_store_one_model(server: LiveApi, key: str, mlp_onnx: Path) -> None:
    content = mlp_onnx.read_bytes()
    start = threading.Barrier(10)

    def upload(_: int) -> httpx.Response:
        with server.client(key) as client:
            start.wait()
            return _upload(client, content, "same-upload")

    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(upload, range(10)))
    with server.client(key) as client:
        models = client.get("/v1/models").json()["items"]

    assert {response.status_code for response in responses} <= {201, 409}
    created = {response.json()["id"] for response in responses if response.status_code == 201}
    assert len(models) == 1
    assert created == {models[0]["id"]}


def test_a_failed_upload_frees_its_key(server: LiveApi, key: str, mlp_onnx: Path) -> None:
    with server.client(key) as client:
        refused = _upload(client, b"\x7fELF" + bytes(64), "retry-me")
        accepted = _upload(client, mlp_onnx.read_bytes(), "retry-me")

    assert refused.status_code == 415
    assert accepted.status_code == 201, accepted.text


def _wait_for_key(key: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        with new_session() as session:
            if session.scalar(select(IdempotencyKey).where(IdempotencyKey.key == key)) is not None:
                return
        assert time.monotonic() < deadline, "the first upload never claimed its key"
        time.sleep(0.05)
