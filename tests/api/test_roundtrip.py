"""The whole path: upload, ingest, job on a real worker, poll, report, download, load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from tests import model_zoo
from tests.fixtures.api import Api


def test_onnx_model_dynamic_int8_round_trip(api: Api, mlp_onnx: Path, digits_npz: Path) -> None:
    # setup
    model = api.upload("models", mlp_onnx, name="digits-mlp")
    assert model.status_code == 201, model.text
    assert model.json()["status"] == "pending"
    dataset = api.upload("datasets", digits_npz)
    assert dataset.status_code == 201, dataset.text
    assert dataset.json()["arrays"]["x"] == {"dtype": "float32", "shape": [360, 1, 8, 8]}
    ready = api.wait_model(model.json()["id"])
    assert ready["status"] == "ready", ready
    assert ready["format"] == "onnx"
    assert ready["signature"]["inputs"][0]["name"] == "x"
    assert ready["parameters"] == 64 * 64 + 64 + 64 * 64 + 64 + 64 * 10 + 10

    # execute
    submitted = api.post(
        "/v1/jobs",
        json={
            "model_id": ready["id"],
            "steps": [{"technique": "quantize.dynamic", "params": {"per_channel": True}}],
            "evaluation": {
                "dataset_id": dataset.json()["id"],
                "metric": "top1",
                "max_accuracy_drop": 0.02,
                "batch_sizes": [1, 8],
            },
        },
    )
    assert submitted.status_code == 202, submitted.text
    assert submitted.headers["location"] == f"/v1/jobs/{submitted.json()['id']}"
    job = api.wait_job(submitted.json()["id"])

    # assert
    assert job["status"] == "succeeded", job
    assert job["progress"] == 1.0
    assert job["steps"][0]["status"] == "succeeded"
    assert job["artifact_id"] == job["steps"][0]["artifact_id"]
    comparison = job["comparison"]
    baseline, candidate = comparison["baseline"], comparison["candidate"]
    assert candidate["size_bytes"] < baseline["size_bytes"] * 0.5
    assert baseline["parameters"] == ready["parameters"] == candidate["parameters"]
    for side in (baseline, candidate):
        for batch in ("1", "8"):
            latency = side["latency_ms"][batch]
            assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"]
            assert side["throughput_per_s"][batch] > 0
        assert side["peak_memory_bytes"] > 0
    assert comparison["delta"]["fidelity"]["cosine"] > 0.99
    assert set(comparison["verdict"]) >= {"smaller", "faster", "within_accuracy_budget", "warnings"}
    assert comparison["verdict"]["smaller"] is True
    assert comparison["environment"]["threads"] >= 1

    content = api.get(f"/v1/artifacts/{job['artifact_id']}/content")
    assert content.status_code == 200
    meta = api.get(f"/v1/artifacts/{job['artifact_id']}").json()
    assert content.headers["etag"] == f'"{meta["sha256"]}"'
    session = ort.InferenceSession(content.content, providers=["CPUExecutionProvider"])
    images, labels = model_zoo.digits("test")
    # The service scores in chunks of 64 samples: dynamic int8 picks activation scales per batch.
    chunks = [session.run(None, {"x": images[i : i + 64]})[0] for i in range(0, len(images), 64)]
    predicted = np.concatenate(chunks).argmax(1)
    measured = float((predicted == labels).mean())
    assert abs(measured - candidate["accuracy"]["top1"]) < 1e-9
    assert (
        abs(
            baseline["accuracy"]["top1"]
            - candidate["accuracy"]["top1"]
            - comparison["delta"]["accuracy_drop"]
        )
        < 1e-9
    )

    report = api.get(f"/v1/jobs/{job['id']}/report")
    assert report.status_code == 200
    assert report.json()["comparison"] == comparison


def test_pt2_model_is_converted_and_compressed_without_a_dataset(api: Api, cnn_pt2: Path) -> None:
    model = api.upload("models", cnn_pt2)
    assert model.status_code == 201, model.text
    ready = api.wait_model(model.json()["id"])
    assert ready["status"] == "ready", ready
    assert ready["format"] == "pt2"
    assert ready["op_histogram"].get("Conv", 0) >= 2

    submitted = api.post(
        "/v1/jobs", json={"model_id": ready["id"], "steps": [{"technique": "quantize.dynamic"}]}
    )
    job = api.wait_job(submitted.json()["id"])

    assert job["status"] == "succeeded", job
    comparison = job["comparison"]
    assert comparison["baseline"]["accuracy"] == {}
    assert comparison["delta"]["accuracy_drop"] is None
    assert 0 < comparison["delta"]["fidelity"]["cosine"] <= 1.0001
    assert set(comparison["delta"]["speedup"]) == {"1", "8"}


def test_job_submitted_while_model_is_pending_waits_for_ingest(api: Api, mlp_onnx: Path) -> None:
    model = api.upload("models", mlp_onnx).json()
    submitted = api.post(
        "/v1/jobs", json={"model_id": model["id"], "steps": [{"technique": "quantize.dynamic"}]}
    )
    assert submitted.status_code == 202

    job = api.wait_job(submitted.json()["id"])

    assert job["status"] == "succeeded", job
    assert job["attempts"] == 1


def test_range_request_returns_the_requested_bytes(api: Api, mlp_onnx: Path) -> None:
    model = api.wait_model(api.upload("models", mlp_onnx).json()["id"])
    job = api.wait_job(
        api.post(
            "/v1/jobs", json={"model_id": model["id"], "steps": [{"technique": "quantize.dynamic"}]}
        ).json()["id"]
    )
    whole = api.get(f"/v1/artifacts/{job['artifact_id']}/content").content

    partial = api.get(f"/v1/artifacts/{job['artifact_id']}/content", headers={"Range": "bytes=10-99"})
    suffix = api.get(f"/v1/artifacts/{job['artifact_id']}/content", headers={"Range": "bytes=-16"})
    outside = api.get(
        f"/v1/artifacts/{job['artifact_id']}/content", headers={"Range": f"bytes={len(whole)}-"}
    )

    assert partial.status_code == 206
    assert partial.content == whole[10:100]
    assert partial.headers["content-range"] == f"bytes 10-99/{len(whole)}"
    assert suffix.content == whole[-16:]
    assert outside.status_code == 416
    assert outside.headers["content-type"] == "application/problem+json"
