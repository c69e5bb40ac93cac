"""Hostile files uploaded through the API: each refused with the right problem, no payload ever runs."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from torch import nn

from service.settings import get_settings
from service.storage import get_store
from tests import model_zoo
from tests.figures import record
from tests.fixtures.api import Api, new_key
from tests.security.corpus import corpus
from tests.security.hostile import Hostile, canary_pickle, pt2_with

PROBLEMS = "https://modelpress.dev/problems/"


@pytest.fixture(scope="module")
def canary_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where a payload that ran would leave its mark."""
    return tmp_path_factory.mktemp("canaries")


@pytest.fixture(scope="module")
def mlp_pt2(files_dir: Path, mlp: nn.Module) -> bytes:
    """A genuine torch.export program to tamper with."""
    return model_zoo.export_pt2(mlp, files_dir / "hostile-base.pt2").read_bytes()


@pytest.fixture(scope="module")
def tenant(app_client: TestClient, worker: Any) -> Api:
    """A tenant of its own, with the session's worker running ingest."""
    return Api(app_client, new_key())


def _outcome(api: Api, hostile: Hostile, response: Any) -> tuple[str, int, str]:
    """(stage, status, problem slug) of what the service did with one upload."""
    if response.status_code != 201:
        return "upload", response.status_code, response.json()["type"].removeprefix(PROBLEMS)
    if hostile.endpoint != "models":
        return "accepted", 201, ""
    model = api.wait_model(response.json()["id"])
    if model["status"] != "rejected":
        return "accepted", 201, model["status"]
    return "ingest", 201, model["error"]["type"].removeprefix(PROBLEMS)


def test_every_hostile_file_is_refused_and_nothing_runs(
    tenant: Api, canary_dir: Path, mlp_onnx: Path, mlp_pt2: bytes
) -> None:
    files = corpus(canary_dir, mlp_onnx.read_bytes(), mlp_pt2, get_settings().max_upload_bytes)
    started = time.monotonic()
    responses = [
        tenant.post(f"/v1/{hostile.endpoint}", files={"file": (hostile.name, hostile.content)})
        for hostile in files
    ]
    outcomes = {
        hostile.name: _outcome(tenant, hostile, response)
        for hostile, response in zip(files, responses, strict=True)
    }
    elapsed = time.monotonic() - started

    wrong = {
        hostile.name: outcomes[hostile.name]
        for hostile in files
        if outcomes[hostile.name] != (hostile.stage, hostile.status or 201, hostile.slug)
    }
    assert wrong == {}
    for hostile, response in zip(files, responses, strict=True):
        if response.status_code != 201:
            assert response.headers["content-type"] == "application/problem+json"
            assert not get_store().exists(hashlib.sha256(hostile.content).hexdigest()), hostile.name
    assert list(canary_dir.iterdir()) == []
    assert [
        item["name"] for item in tenant.get("/v1/models").json()["items"] if item["status"] == "ready"
    ] == []
    at_upload = [name for name, outcome in outcomes.items() if outcome[0] == "upload"]
    record(
        "hostile_uploads",
        {
            "files uploaded": len(files),
            "refused at upload (413/415/422)": len(at_upload),
            "rejected by sandboxed ingest": len(files) - len(at_upload),
            "accepted": sum(1 for outcome in outcomes.values() if outcome[0] == "accepted"),
            "canary files created": len(list(canary_dir.iterdir())),
            "problem types seen": sorted({outcome[2] for outcome in outcomes.values()}),
            "files": sorted(outcomes),
            "seconds for the whole corpus": round(elapsed, 1),
        },
    )


def test_program_with_poisoned_sample_inputs_is_ingested_without_running_them(
    tenant: Api, canary_dir: Path, mlp_pt2: bytes
) -> None:
    # torch.export.load would unpickle sample inputs without weights_only; ingest blanks them first.
    poisoned = pt2_with(mlp_pt2, {}, sample_inputs=canary_pickle(canary_dir / "sample-inputs", 2))

    response = tenant.post("/v1/models", files={"file": ("poisoned.pt2", poisoned)})
    model = tenant.wait_model(response.json()["id"])

    assert model["status"] == "ready", model["error"]
    assert model["format"] == "pt2"
    assert not (canary_dir / "sample-inputs").exists()


def test_format_is_decided_by_content_not_by_name(tenant: Api, mlp_onnx: Path, mlp_pt2: bytes) -> None:
    as_pt = tenant.post("/v1/models", files={"file": ("model.pt", mlp_onnx.read_bytes())}).json()
    as_onnx = tenant.post("/v1/models", files={"file": ("model.onnx", mlp_pt2)}).json()

    assert tenant.wait_model(as_pt["id"])["format"] == "onnx"
    assert tenant.wait_model(as_onnx["id"])["format"] == "pt2"
