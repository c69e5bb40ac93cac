"""Every route of the OpenAPI document, called with another tenant's ids: 404, as for a missing id."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.settings import get_settings
from tests.chaos.live import ROOT
from tests.figures import record
from tests.fixtures.api import Api, new_key

PROBLEMS = "https://modelpress.dev/problems/"
PARAMETER = re.compile(r"\{(\w+)\}")


@pytest.fixture(scope="module")
def owner(app_client: TestClient, worker: Any, mlp_onnx: Path, digits_npz: Path) -> dict[str, Any]:
    """A tenant with a ready model, a dataset and a finished job with its artifact."""
    api = Api(app_client, new_key())
    model = api.wait_model(api.upload("models", mlp_onnx).json()["id"])
    dataset = api.upload("datasets", digits_npz).json()
    submitted = api.post(
        "/v1/jobs",
        json={
            "model_id": model["id"],
            "steps": [{"technique": "quantize.dynamic"}],
            "evaluation": {"dataset_id": dataset["id"], "metric": "top1"},
        },
    )
    job = api.wait_job(submitted.json()["id"])
    assert job["status"] == "succeeded", job
    ids = {"model_id": model["id"], "dataset_id": dataset["id"], "job_id": job["id"]}
    return {"api": api, "ids": ids | {"artifact_id": job["artifact_id"]}}


def _call(api: Api, method: str, path: str) -> Any:
    return api.client.request(method.upper(), path, headers=api.headers)


def _anonymous(body: dict[str, Any], *ids: str) -> dict[str, Any]:
    """The problem with ids blanked, to compare a foreign id's answer with a missing id's."""
    text = repr(sorted(body.items()))
    for value in ids:
        text = text.replace(value, "<id>")
    return {"problem": text}


def test_another_tenants_ids_are_404_on_every_route(
    app_client: TestClient, owner: dict[str, Any], worker: Any
) -> None:
    intruder = Api(app_client, new_key())
    ids: dict[str, str] = owner["ids"]
    document = app_client.get("/openapi.json").json()
    checked: list[str] = []
    for template, operations in document["paths"].items():
        names = PARAMETER.findall(template)
        if not names:
            continue
        assert set(names) <= set(ids), (
            f"{template}: no owner's id for {set(names) - set(ids)}; extend the matrix"
        )
        for method in operations:
            foreign = template.format(**{name: ids[name] for name in names})
            missing_ids = {name: str(uuid.uuid4()) for name in names}
            missing = template.format(**missing_ids)
            answer, absent = _call(intruder, method, foreign), _call(intruder, method, missing)
            assert answer.status_code == 404, (method, foreign, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.json()["type"] == PROBLEMS + "not-found"
            assert _anonymous(answer.json(), foreign, *ids.values()) == _anonymous(
                absent.json(), missing, *missing_ids.values()
            )
            checked.append(f"{method.upper()} {template}")

    owner_api: Api = owner["api"]
    for name, value in ids.items():
        kind = name.removesuffix("_id") + "s"
        assert owner_api.get(f"/v1/{kind}/{value}").status_code == 200, f"the intruder changed {kind}"
    record(
        "tenancy",
        {"operations with ids called by another tenant (all 404)": len(checked), "operations": checked},
    )


def test_another_tenants_objects_are_not_listed_or_usable(
    app_client: TestClient, owner: dict[str, Any], mlp_onnx: Path
) -> None:
    intruder = Api(app_client, new_key())
    ids = owner["ids"]
    own_model = intruder.upload("models", mlp_onnx).json()

    for listing in ("/v1/models", "/v1/datasets", "/v1/jobs", f"/v1/jobs?model_id={ids['model_id']}"):
        listed = {item["id"] for item in intruder.get(listing).json()["items"]}
        assert listed.isdisjoint(ids.values()), listing
    steps = [{"technique": "quantize.dynamic"}]
    foreign_model = intruder.post("/v1/jobs", json={"model_id": ids["model_id"], "steps": steps})
    foreign_dataset = intruder.post(
        "/v1/jobs",
        json={"model_id": own_model["id"], "steps": steps, "evaluation": {"dataset_id": ids["dataset_id"]}},
    )
    assert foreign_model.status_code == 404, foreign_model.text
    assert foreign_dataset.status_code == 404, foreign_dataset.text
    assert intruder.get("/v1/jobs").json()["items"] == []


def test_revoked_key_is_refused(app_client: TestClient, database: str) -> None:
    key = new_key()
    api = Api(app_client, key)
    assert api.get("/v1/models").status_code == 200

    revoked = subprocess.run(
        [sys.executable, "-m", "service.cli.main", "keys", "revoke", key[:10]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert revoked.returncode == 0, revoked.stderr
    # Revoked in another process: this API process stops trusting the key within auth_cache_s.
    window = get_settings().auth_cache_s
    deadline = time.monotonic() + window + 2  # slack for a loaded machine
    while (answer := api.get("/v1/models")).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert answer.status_code == 401
    assert answer.json()["type"] == PROBLEMS + "unauthorized"
