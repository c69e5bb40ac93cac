"""The whole flow with an API and two workers that share no disk, against a real SeaweedFS S3 server."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from service.storage import open_store
from tests.chaos.live import MULTIPART, multipart_body, start_api, stop_api
from tests.scale.deployment import deployment
from tests.seaweed import SeaweedS3

JOBS = 4


def _wait(client: httpx.Client, path: str, final: set[str], timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get(path).json()
        if body["status"] in final or time.monotonic() > deadline:
            return body
        time.sleep(0.5)


def _upload(client: httpx.Client, kind: str, path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        response = client.post(f"/v1/{kind}", files={"file": (path.name, handle)})
    assert response.status_code == 201, response.text
    return dict(response.json())


def _files_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()] if folder.exists() else []


def test_api_and_two_workers_share_only_the_services(
    seaweed: SeaweedS3, s3_bucket: str, tmp_path: Path, mlp_onnx: Path, digits_npz: Path
) -> None:
    prefix = f"scale-{uuid.uuid4().hex[:8]}"
    database = os.environ.get("MODELPRESS_TEST_DATABASE", "modelpress_test") + "_scale"
    store = open_store(f"s3://{s3_bucket}/{prefix}")
    part = str(5 * 1024 * 1024)  # S3's smallest part: an oversized upload has sent one before its 413
    with (
        deployment(
            tmp_path,
            storage_url=f"s3://{s3_bucket}/{prefix}",
            database=database,
            extra_env=seaweed.env() | {"MODELPRESS_STORAGE_PART_BYTES": part},
        ) as deployed,
        deployed.client() as client,
    ):
        model = _upload(client, "models", mlp_onnx)
        dataset = _upload(client, "datasets", digits_npz)
        assert _wait(client, f"/v1/models/{model['id']}", {"ready", "rejected"})["status"] == "ready"
        submitted = [
            client.post(
                "/v1/jobs",
                json={
                    "model_id": model["id"],
                    "steps": [{"technique": "quantize.dynamic"}],
                    "evaluation": {"dataset_id": dataset["id"], "metric": "top1", "batch_sizes": [1]},
                },
            )
            for _ in range(JOBS)
        ]
        assert all(response.status_code == 202 for response in submitted), submitted[0].text
        jobs = [
            _wait(client, f"/v1/jobs/{r.json()['id']}", {"succeeded", "failed", "cancelled"})
            for r in submitted
        ]

        assert [job["status"] for job in jobs] == ["succeeded"] * JOBS, jobs[0]
        artifact = client.get(f"/v1/artifacts/{jobs[0]['artifact_id']}").json()
        content = client.get(f"/v1/artifacts/{jobs[0]['artifact_id']}/content")
        assert hashlib.sha256(content.content).hexdigest() == artifact["sha256"]
        ranged = client.get(f"/v1/artifacts/{artifact['id']}/content", headers={"Range": "bytes=4-19"})
        assert ranged.status_code == 206 and ranged.content == content.content[4:20]

        # An operator who turns on presigned downloads sends clients to the store itself.
        presigning = start_api(
            tmp_path / "presigning-api.log",
            **deployed.env,
            MODELPRESS_HOME=str(tmp_path / "presigning-api"),
            MODELPRESS_STORAGE_PRESIGNED_DOWNLOADS="true",
        )
        try:
            with presigning.client(deployed.key) as direct:
                redirect = direct.get(f"/v1/artifacts/{artifact['id']}/content")
        finally:
            stop_api(presigning)
        assert redirect.status_code == 307 and redirect.headers["etag"] == f'"{artifact["sha256"]}"'
        assert httpx.get(redirect.headers["location"], timeout=30).content == content.content

        # An upload refused half-way (past the size limit) leaves no object and no multipart part.
        objects_before = sorted(store.objects())
        chunks = (os.urandom(1024 * 1024) for _ in range(12))  # past the tests' 8 MiB limit
        refused = client.post(
            "/v1/models",
            content=multipart_body(chunks, filename="huge.onnx"),
            headers={"Content-Type": MULTIPART},
        )
        assert refused.status_code == 413, refused.text
        assert sorted(store.objects()) == objects_before
        assert store.remove_stale_uploads(0) == 0

        # Each worker fetched inputs into its own cache: both did work, neither used the other's disk.
        cached = [_files_under(folder / "scratch" / "cache") for folder in deployed.worker_folders]
        assert all(cached), "both workers should have fetched inputs from the store"
        # Nothing went to a local artifact folder: the API's and the workers' homes hold no objects.
        for home in [deployed.api_home, *(folder / "home" for folder in deployed.worker_folders)]:
            assert _files_under(home / "artifacts" / "objects") == []
