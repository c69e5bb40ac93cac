"""export.torch through the service: a .pt2 that torch loads, reproduces the model, and ingests again."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from tests import model_zoo
from tests.fixtures.api import Api


def _export(api: Api, model: Path, dataset: Path, params: dict[str, Any]) -> dict[str, Any]:
    uploaded = api.upload("models", model).json()
    assert api.wait_model(uploaded["id"])["status"] == "ready"
    dataset_id = api.upload("datasets", dataset).json()["id"]
    body = {
        "model_id": uploaded["id"],
        "steps": [{"technique": "export.torch", "params": {"timing_budget_s": 0.3, **params}}],
        "evaluation": {"dataset_id": dataset_id, "metric": "top1", "batch_sizes": [8]},
    }
    submitted = api.post("/v1/jobs", json=body)
    assert submitted.status_code == 202, submitted.text
    return api.wait_job(submitted.json()["id"])


def _download(api: Api, artifact_id: str, path: Path) -> Path:
    meta = api.get(f"/v1/artifacts/{artifact_id}").json()
    assert meta["filename"].endswith("-export-torch.pt2")
    path.write_bytes(api.get(f"/v1/artifacts/{artifact_id}/content").content)
    return path


def test_fp32_program_reproduces_the_model_and_ingests_again(
    api: Api, mlp: nn.Module, mlp_onnx: Path, digits_npz: Path, tmp_path: Path
) -> None:
    job = _export(api, mlp_onnx, digits_npz, {})
    assert job["status"] == "succeeded", job
    metrics = job["steps"][0]["metrics"]
    assert metrics["weights"] == "fp32" and metrics["dynamic_dims"] == {"x": [0]}
    assert set(metrics["latency_ms"]["8"]) == {"torch_fp32", "program", "onnxruntime"}
    assert metrics["fidelity_vs_torch_fp32"]["max_abs_error"] <= 1e-5
    assert any("wrote a .pt2 file" in warning for warning in job["comparison"]["verdict"]["warnings"])

    program = _download(api, job["artifact_id"], tmp_path / "model.pt2")
    images, _ = model_zoo.digits("test")
    batch = torch.from_numpy(images[:33])  # another batch size than any the export saw
    with torch.no_grad():
        np.testing.assert_allclose(
            torch.export.load(str(program)).module()(batch).numpy(), mlp(batch).numpy(), atol=1e-5
        )
    again = api.upload("models", program).json()
    ready = api.wait_model(again["id"])
    assert ready["status"] == "ready" and ready["format"] == "pt2", ready


def test_int8_program_quantizes_linear_layers_and_says_whether_it_is_faster(
    api: Api, mlp: nn.Module, mlp_onnx: Path, digits_npz: Path, tmp_path: Path
) -> None:
    import torchao  # noqa: F401 - registers the quantized tensor types the program holds

    job = _export(api, mlp_onnx, digits_npz, {"weights": "int8", "batch_sizes": [1, 32]})
    assert job["status"] == "succeeded", job
    metrics, warnings = job["steps"][0]["metrics"], job["comparison"]["verdict"]["warnings"]
    assert metrics["int8_linear_layers"] == 3 and metrics["torchao"]
    assert metrics["fidelity_vs_torch_fp32"]["cosine"] > 0.999
    for batch, speedup in metrics["speedup_vs_torch_fp32"].items():
        said = any("torchao int8 is not faster" in w and f"batch {batch}:" in w for w in warnings)
        assert said == (speedup < 1.05)

    path = _download(api, job["artifact_id"], tmp_path / "int8.pt2")
    program = torch.export.load(str(path))
    images, labels = model_zoo.digits("test")
    with torch.no_grad():
        predicted = program.module()(torch.from_numpy(images)).argmax(1).numpy()
    assert (predicted == labels).mean() >= model_zoo.accuracy(mlp) - 0.02
    # Its weights are pickled tensor subclasses: said in the step, and refused as an upload.
    assert any("upload the fp32 export" in w for w in job["steps"][0]["warnings"])
    again = api.wait_model(api.upload("models", path).json()["id"])
    assert again["status"] == "rejected" and "pickled" in again["error"]["detail"], again


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_recurrent_models_export_with_a_dynamic_batch(
    api: Api, kind: str, digits_npz: Path, tmp_path: Path
) -> None:
    """The bridge's nn.LSTM / nn.GRU export; the zero initial state torch's exporter sizes from the batch
    (Shape arithmetic torch.export cannot trace) is the layer's default, so it is not traced."""
    model = model_zoo.trained(partial(model_zoo.DigitsRecurrent, kind), epochs=2)
    job = _export(api, model_zoo.export_onnx(model, tmp_path / f"{kind}.onnx"), digits_npz, {})
    assert job["status"] == "succeeded", job
    assert job["steps"][0]["metrics"]["dynamic_dims"] == {"x": [0]}
    program = torch.export.load(str(_download(api, job["artifact_id"], tmp_path / f"{kind}.pt2")))
    batch = torch.from_numpy(model_zoo.digits("test")[0][:21])
    with torch.no_grad():
        np.testing.assert_allclose(program.module()(batch).numpy(), model(batch).numpy(), atol=1e-5)


def test_a_pruned_step_artifact_exports(api: Api, mlp_onnx: Path, tmp_path: Path) -> None:
    """export.torch after prune.structured exports the pruned model: its Linear layers are narrower."""
    model = api.upload("models", mlp_onnx).json()
    steps = [
        {"technique": "prune.structured", "params": {"sparsity": 0.5}},
        {"technique": "export.torch", "params": {"timing_budget_s": 0.2, "batch_sizes": [4]}},
    ]
    submitted = api.post("/v1/jobs", json={"model_id": model["id"], "steps": steps})
    job = api.wait_job(submitted.json()["id"])
    assert job["status"] == "succeeded", job
    program = torch.export.load(str(_download(api, job["steps"][1]["artifact_id"], tmp_path / "p.pt2")))
    widths = sorted(
        {dim for tensor in program.state_dict.values() if tensor.ndim == 2 for dim in tensor.shape}
    )
    assert 32 in widths and 64 in widths and max(widths) == 64  # 64 inputs; hidden layers cut from 64 to 32
    hidden = [t for t in program.state_dict.values() if t.ndim == 2 and t.shape[1] != 64]
    assert all(t.shape[1] == 32 for t in hidden), [tuple(t.shape) for t in hidden]


def test_export_torch_must_be_the_last_step(api: Api, mlp_onnx: Path) -> None:
    model = api.upload("models", mlp_onnx).json()
    steps = [{"technique": "export.torch"}, {"technique": "quantize.dynamic"}]
    response = api.post("/v1/jobs", json={"model_id": model["id"], "steps": steps})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "make it the job's last step" in response.json()["detail"]
