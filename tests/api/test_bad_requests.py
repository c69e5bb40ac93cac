"""Bad input gets a clear problem document with the right status and type, and loses nothing."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.fixtures.api import Api

PROBLEMS = "https://modelpress.dev/problems/"


def assert_problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == PROBLEMS + slug
    assert body["status"] == status
    assert body["title"] and body["detail"]
    return body


@pytest.fixture
def ready_model(api: Api, mlp_onnx: Path) -> dict[str, Any]:
    return api.wait_model(api.upload("models", mlp_onnx).json()["id"])


def test_requests_without_a_valid_key_are_refused(app_client: TestClient) -> None:
    assert_problem(app_client.get("/v1/models"), 401, "unauthorized")
    wrong = app_client.get("/v1/models", headers={"Authorization": "Bearer mp_not-a-key"})
    assert_problem(wrong, 401, "unauthorized")
    assert wrong.headers["www-authenticate"] == "Bearer"


def test_unknown_technique_is_422_and_names_the_known_ones(api: Api, ready_model: dict[str, Any]) -> None:
    response = api.post(
        "/v1/jobs", json={"model_id": ready_model["id"], "steps": [{"technique": "quantize.magic"}]}
    )

    body = assert_problem(response, 422, "unknown-technique")
    assert "quantize.dynamic" in body["known"]
    assert api.get("/v1/jobs").json()["items"] == []


def test_bad_params_are_422_with_the_field_named(api: Api, ready_model: dict[str, Any]) -> None:
    response = api.post(
        "/v1/jobs",
        json={
            "model_id": ready_model["id"],
            "steps": [{"technique": "quantize.dynamic", "params": {"per_channel": "often", "bogus": 1}}],
        },
    )

    body = assert_problem(response, 422, "invalid-params")
    fields = {tuple(error["loc"]) for error in body["errors"]}
    # per_channel is true, false or "auto": pydantic names the union member after the field.
    assert any(loc[0] == "per_channel" for loc in fields) and ("bogus",) in fields


def test_malformed_job_body_is_a_validation_problem(api: Api) -> None:
    response = api.post("/v1/jobs", json={"model_id": "not-a-uuid", "steps": []})

    body = assert_problem(response, 422, "validation-error")
    assert {error["loc"][-1] for error in body["errors"]} >= {"model_id", "steps"}


def test_dataset_with_wrong_arrays_is_422_naming_the_array(
    api: Api, ready_model: dict[str, Any], tmp_path: Path
) -> None:
    wrong_name = tmp_path / "wrong-name.npz"
    np.savez(wrong_name, images=np.zeros((4, 1, 8, 8), np.float32))
    wrong_shape = tmp_path / "wrong-shape.npz"
    np.savez(wrong_shape, x=np.zeros((4, 1, 7, 7), np.float32))
    wrong_dtype = tmp_path / "wrong-dtype.npz"
    np.savez(wrong_dtype, x=np.zeros((4, 1, 8, 8), np.float64))

    for path, needle in ((wrong_name, "['x']"), (wrong_shape, "'x'"), (wrong_dtype, "float64")):
        dataset = api.upload("datasets", path).json()
        response = api.post(
            "/v1/jobs",
            json={
                "model_id": ready_model["id"],
                "steps": [{"technique": "quantize.dynamic"}],
                "evaluation": {"dataset_id": dataset["id"]},
            },
        )
        body = assert_problem(response, 422, "dataset-mismatch")
        assert needle in body["detail"]


def test_dataset_that_is_not_an_npz_or_holds_objects_is_refused(api: Api, tmp_path: Path) -> None:
    not_zip = tmp_path / "data.npz"
    not_zip.write_bytes(b"just some text")
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, x=np.array([{"a": 1}], dtype=object))

    assert_problem(api.upload("datasets", not_zip), 422, "invalid-dataset")
    body = assert_problem(api.upload("datasets", pickled), 422, "invalid-dataset")
    assert "pickles" in body["detail"]


def test_oversized_upload_is_413(api: Api, tmp_path: Path) -> None:
    big = tmp_path / "big.onnx"
    big.write_bytes(b"\x08" * (8 * 1024 * 1024 + 1))

    assert_problem(api.upload("models", big), 413, "payload-too-large")
    assert api.get("/v1/models").json()["items"] == []


def test_executables_and_engines_are_refused_at_upload(api: Api, tmp_path: Path) -> None:
    elf = tmp_path / "model.onnx"
    elf.write_bytes(b"\x7fELF" + bytes(100))

    body = assert_problem(api.upload("models", elf), 415, "unsupported-format")
    assert "ELF" in body["detail"]


def test_garbage_model_is_rejected_by_ingest_with_a_reason(api: Api, tmp_path: Path) -> None:
    garbage = tmp_path / "model.onnx"
    garbage.write_bytes(b"\x08\x07" + bytes(range(256)) * 4)

    model = api.wait_model(api.upload("models", garbage).json()["id"])

    assert model["status"] == "rejected"
    assert model["error"]["type"].startswith(PROBLEMS)
    assert model["error"]["detail"]
    job = api.post("/v1/jobs", json={"model_id": model["id"], "steps": [{"technique": "quantize.dynamic"}]})
    assert_problem(job, 409, "conflict")


def test_unknown_ids_and_other_tenants_objects_are_404(
    api: Api, other_api: Api, ready_model: dict[str, Any]
) -> None:
    for path in (f"/v1/models/{uuid.uuid4()}", f"/v1/models/{ready_model['id']}"):
        assert_problem(other_api.get(path), 404, "not-found")
    assert_problem(other_api.delete(f"/v1/models/{ready_model['id']}"), 404, "not-found")
    job = other_api.post(
        "/v1/jobs", json={"model_id": ready_model["id"], "steps": [{"technique": "quantize.dynamic"}]}
    )
    assert_problem(job, 404, "not-found")
    assert api.get(f"/v1/models/{ready_model['id']}").status_code == 200


def test_unknown_route_and_bad_cursor_are_problems(api: Api) -> None:
    assert_problem(api.get("/v1/nothing-here"), 404, "not-found")
    assert_problem(api.get("/v1/jobs", params={"cursor": "%%%"}), 422, "validation-error")


def test_a_repeated_form_field_is_422_not_its_last_value(api: Api, mlp_onnx: Path) -> None:
    # A list where the contract says one string (`input_shapes` twice) is refused, naming the field.
    response = api.post(
        "/v1/models",
        files=[
            ("file", ("mlp.onnx", mlp_onnx.read_bytes())),
            ("input_shapes", (None, "[[1, 64]]")),
            ("input_shapes", (None, "[[2, 64]]")),
        ],
    )

    body = assert_problem(response, 422, "validation-error")
    assert "input_shapes" in body["detail"]
    assert api.get("/v1/models").json()["items"] == []
