"""NaN and infinity never break a report or a job: figures become null with a warning, and a dataset
with non-finite values that reached the store anyway is refused by the worker."""

from __future__ import annotations

import io
import json
import math
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from fastapi.responses import JSONResponse
from onnx import TensorProto, helper, numpy_helper

from engine.contract import TechniqueError
from engine.evaluate.accuracy import score
from service.artifacts.orm import Artifact, ArtifactKind
from service.datasets.orm import Dataset
from service.db import new_session
from service.jobs.orm import Job, JobStep
from service.jobs.report_router import build_report
from service.report.html import render_html
from service.storage import get_store
from service.tenants import service as tenants_service
from tests.fixtures.api import Api

NAN, INF = float("nan"), float("inf")


def _strict(value: Any) -> Any:
    """Parse JSON the way a strict client does: NaN and Infinity are not JSON."""

    def refuse(token: str) -> None:
        raise AssertionError(f"non-JSON token {token}")

    return json.loads(value, parse_constant=refuse)


def test_a_report_with_non_finite_figures_serializes_as_json_and_html() -> None:
    comparison = {
        "baseline": {"latency_ms": {"1": {"p50": 1.0, "p95": INF}}, "accuracy": {"top1": NAN}},
        "candidate": {"latency_ms": {"1": {"p50": -INF}}, "fidelity": [NAN, 1.0]},
        "verdict": {"warnings": ["an existing warning"]},
    }
    step = JobStep(index=0, technique="quantize.dynamic", params={}, status="succeeded", warnings=[],
                   metrics={"mean_error": NAN, "per_layer_sparsity": {"a": INF, "b": 0.5}})  # fmt: skip
    job = Job(
        id=uuid.uuid4(), model_id=uuid.uuid4(), status="succeeded", evaluation={}, comparison=comparison
    )
    job.steps = [step]

    report = build_report(job)
    document = _strict(JSONResponse(report).body)
    page = render_html(report)

    assert document["comparison"]["baseline"]["latency_ms"]["1"] == {"p50": 1.0, "p95": None}
    assert document["comparison"]["candidate"]["fidelity"] == [None, 1.0]
    assert document["steps"][0]["metrics"]["mean_error"] is None
    warnings = document["comparison"]["verdict"]["warnings"]
    assert warnings[0] == "an existing warning" and "6 figure(s)" in warnings[1]
    assert "baseline.accuracy.top1" in warnings[1] and document["warnings"] == warnings[1:]
    chart_data = page.split('<script id="report-charts" type="application/json">', 1)[1].split("</script>")[0]
    _strict(chart_data)
    assert "Infinity" not in page and warnings[1].split(":")[0] in page


def _nan_making_model(path: Path) -> Path:
    """x (N, 1, 8, 8) -> flatten -> MatMul -> Sqrt: half of the scores are NaN on centred inputs."""
    weight = numpy_helper.from_array(
        np.random.default_rng(0).standard_normal((64, 10)).astype(np.float32), "w"
    )
    shape = numpy_helper.from_array(np.array([-1, 64], dtype=np.int64), "shape")
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w"], ["scores"]),
        helper.make_node("Sqrt", ["scores"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "nan",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 10])],
        initializer=[weight, shape],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), path)
    return path


def test_a_job_whose_figures_are_nan_succeeds_and_its_report_answers(api: Api, tmp_path: Path) -> None:
    model = api.wait_model(api.upload("models", _nan_making_model(tmp_path / "nan.onnx")).json()["id"])
    assert model["status"] == "ready", model
    job = api.post("/v1/jobs", json={"model_id": model["id"], "steps": [{"technique": "quantize.dynamic"}]})
    assert job.status_code == 202, job.text

    finished = api.wait_job(job.json()["id"])
    report = api.get(f"/v1/jobs/{finished['id']}/report")
    page = api.get(f"/v1/jobs/{finished['id']}/report", headers={"Accept": "text/html"})

    assert finished["status"] == "succeeded", finished["error"]
    assert report.status_code == 200 and page.status_code == 200, (report.text, page.text)
    document = _strict(report.content)
    warnings = document["comparison"]["verdict"]["warnings"]
    assert any("not finite numbers" in warning for warning in warnings), warnings
    assert any("not finite numbers" in warning for warning in finished["comparison"]["verdict"]["warnings"])


def _store_dataset_behind_the_api(api: Api, tmp_path: Path, arrays: dict[str, np.ndarray]) -> str:
    """Put a dataset in the store and the database directly, as a store corrupted after upload would."""
    path = tmp_path / "stored.npz"
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.write_bytes(buffer.getvalue())
    stored = get_store().put_file(path)
    with new_session() as session:
        tenant_id = tenants_service.authenticate(session=session, key=api.headers["Authorization"][7:])
        artifact = Artifact(
            tenant_id=tenant_id,
            kind=ArtifactKind.DATASET,
            sha256=stored.sha256,
            size_bytes=stored.size_bytes,
            media_type="application/x-npz",
            filename="stored.npz",
        )
        session.add(artifact)
        session.flush()
        record = {
            name: {"dtype": array.dtype.name, "shape": list(array.shape)} for name, array in arrays.items()
        }
        dataset = Dataset(
            tenant_id=tenant_id, name="stored", artifact_id=artifact.id, arrays=record, samples=4
        )
        session.add(dataset)
        session.commit()
        return str(dataset.id)


def test_the_worker_refuses_a_non_finite_dataset_the_api_never_saw(
    api: Api, mlp_onnx: Path, tmp_path: Path
) -> None:
    images = np.zeros((4, 1, 8, 8), dtype=np.float32)
    images[2, 0, 3, 3] = np.nan
    dataset_id = _store_dataset_behind_the_api(api, tmp_path, {"x": images, "labels": np.arange(4)})
    model = api.wait_model(api.upload("models", mlp_onnx).json()["id"])
    body = {"model_id": model["id"], "steps": [{"technique": "quantize.dynamic"}],
            "evaluation": {"dataset_id": dataset_id}}  # fmt: skip

    job = api.wait_job(api.post("/v1/jobs", json=body).json()["id"])

    assert job["status"] == "failed"
    assert job["error"]["type"].endswith("/invalid-dataset") and "'x'" in job["error"]["detail"], job["error"]
    assert "non-finite" in job["error"]["detail"]


@pytest.mark.parametrize("labels", [[0, 1, 10], [-1, 0, 1], [0, 2**40, 1]])
def test_scoring_refuses_labels_outside_the_classes(labels: list[int]) -> None:
    outputs = np.random.default_rng(0).random((3, 10)).astype(np.float32)
    for metric in ("top1", "top5"):
        with pytest.raises(TechniqueError) as refused:
            score(metric, outputs, np.array(labels, dtype=np.int64))
        assert refused.value.slug == "dataset-mismatch" and "10 classes" in refused.value.detail
    assert math.isfinite(score("top1", outputs, np.array([0, 1, 9])))
