"""prune.structured through the service on a YOLOv8-like detector exported at a fixed [1, 3, 64, 64]."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from tests.fixtures.api import Api
from tests.worker import detector_models


def test_a_detector_is_pruned_through_the_api(api: Api, tmp_path: Path) -> None:
    """The job succeeds; C2f blocks are pruned through their Split; the artifact keeps the output shape."""
    torch.manual_seed(0)
    yolo = detector_models.randomize_norms(detector_models.TinyYOLOv8())
    source = detector_models.export(yolo, (1, 3, 64, 64), tmp_path / "yolo.onnx", ["output0"])
    model = api.wait_model(api.upload("models", source).json()["id"])
    assert model["status"] == "ready", model
    body = {"model_id": model["id"], "steps": [{"technique": "prune.structured", "params": {"round_to": 4}}]}
    submitted = api.post("/v1/jobs", json=body)
    assert submitted.status_code == 202, submitted.text
    job = api.wait_job(submitted.json()["id"])
    assert job["status"] == "succeeded", job.get("problem") or job.get("error")
    metrics = job["steps"][0]["metrics"]
    assert metrics["parameters_after"] < metrics["parameters_before"]
    assert metrics["channels"]["/backbone.2/cv1/cv1.0/Conv"]["after"] < 16
    # The head's channels reach the output through its final Concat (or the output itself when
    # ingest keeps a node between them) and the DFL conv runs over anchors: both kept, with reasons.
    kept = {entry["node"]: entry["reason"] for entry in metrics["kept_whole"]}
    assert kept.get("/detect/dfl/conv/Conv") == "convolution over a non-channel axis", kept
    assert {"output0", "/detect/Concat_9"} & kept.keys(), kept
    content = api.get(f"/v1/artifacts/{job['artifact_id']}/content")
    session = ort.InferenceSession(content.content, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    assert session.run(None, {"images": x})[0].shape == (1, 7, 84)
