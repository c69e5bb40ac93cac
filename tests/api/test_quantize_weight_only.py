"""quantize.weight_only over HTTP with a real worker: a MatMul classifier, a tiny language model, refusals."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from service.db import new_session
from service.workers.orm import Worker
from tests import model_zoo
from tests.api.test_bad_requests import assert_problem
from tests.fixtures.api import Api


def _submit(api: Api, model_id: str, params: dict[str, Any], evaluation: dict[str, Any]) -> Any:
    return api.post(
        "/v1/jobs",
        json={"model_id": model_id, "steps": [{"technique": "quantize.weight_only", "params": params}],
              "evaluation": evaluation},
    )  # fmt: skip


def _succeeded(api: Api, response: Any) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    job = api.wait_job(response.json()["id"])
    assert job["status"] == "succeeded", job
    return job


@pytest.fixture
def decoder(api: Api, decoder_onnx: Path, tokens_npz: Path) -> dict[str, Any]:
    """The tiny decoder (ingested) and its held-out token ids."""
    model = api.wait_model(api.upload("models", decoder_onnx).json()["id"])
    assert model["status"] == "ready", model
    return {"model": model, "tokens": api.upload("datasets", tokens_npz).json()["id"]}


def test_int4_rtn_on_a_digits_matmul_classifier_keeps_its_accuracy(
    api: Api, matmul_mlp_onnx: Path, tmp_path: Path
) -> None:
    model = api.wait_model(api.upload("models", matmul_mlp_onnx).json()["id"])
    digits = api.upload("datasets", model_zoo.write_dataset(tmp_path / "digits.npz")).json()["id"]

    job = _succeeded(
        api,
        _submit(api, model["id"], {"algorithm": "rtn", "block_size": 32},
                {"dataset_id": digits, "metric": "top1", "max_accuracy_drop": 0.03, "batch_sizes": [1]}),
    )  # fmt: skip

    metrics = job["steps"][0]["metrics"]
    assert metrics["quantized_nodes"] == 2 and metrics["float_matmul_nodes"] == 0
    comparison = job["comparison"]
    assert comparison["baseline"]["accuracy"]["top1"] > 0.9
    assert comparison["delta"]["accuracy_drop"] <= 0.03
    assert comparison["verdict"]["within_accuracy_budget"] is True
    # 64x128 and 128x10 fp32 weights in 4 bits with one scale per 32: under a third of the file.
    assert comparison["delta"]["size_ratio"] < 0.33


def test_ingest_records_the_decoder_and_its_cache(decoder: dict[str, Any]) -> None:
    layout = decoder["model"]["signature"]["decoder"]

    assert layout["past_inputs"] == [
        f"past_key_values.{i}.{kind}" for i in (0, 1) for kind in ("key", "value")
    ]
    assert layout["present_outputs"] == [
        name.replace("past_key_values", "present") for name in layout["past_inputs"]
    ]
    assert (layout["kv_heads"], layout["head_dim"], layout["vocab_size"]) == (2, 16, 256)
    assert layout["position_ids"] is True


def test_gptq_on_the_tiny_decoder_reports_perplexity_and_generation_speed(
    api: Api, decoder: dict[str, Any]
) -> None:
    job = _succeeded(
        api,
        _submit(api, decoder["model"]["id"],
                {"algorithm": "gptq", "block_size": 32, "dataset_id": decoder["tokens"],
                 "calibration_samples": 8},
                {"dataset_id": decoder["tokens"], "max_perplexity_increase": 0.2, "batch_sizes": [1, 2],
                 "prompt_length": 16, "new_tokens": 8}),
    )  # fmt: skip

    comparison = job["comparison"]
    baseline, candidate = comparison["baseline"], comparison["candidate"]
    # Trained on the corpus, the model predicts held-out bytes far better than chance (256).
    assert baseline["accuracy"]["perplexity"] < 80
    increase = candidate["accuracy"]["perplexity"] / baseline["accuracy"]["perplexity"] - 1
    assert comparison["delta"]["accuracy_drop"] == pytest.approx(increase)
    assert comparison["delta"]["perplexity_increase"] == pytest.approx(increase)
    # GPTQ compensates its rounding error on the calibration tokens: the 20% budget holds.
    assert increase <= 0.2 and comparison["verdict"]["within_accuracy_budget"] is True
    for side in (baseline, candidate):
        for batch in ("1", "2"):
            figures = side["generation"][batch]
            assert figures["time_to_first_token_ms"]["p50"] > 0 and figures["decode_tokens_per_s"] > 0
            assert side["latency_ms"][batch]["p50"] == figures["time_to_first_token_ms"]["p50"]
    speedup = comparison["delta"]["decode_speedup"]["1"]
    expected = (
        candidate["generation"]["1"]["decode_tokens_per_s"]
        / baseline["generation"]["1"]["decode_tokens_per_s"]
    )
    assert speedup == pytest.approx(expected)
    assert comparison["decoder"] == {"prompt_length": 16, "new_tokens": 8, "greedy": True}
    assert 0 <= comparison["delta"]["fidelity"]["greedy_token_agreement"]["1"] <= 1


def test_rtn_quantizes_the_embedding_gather_too(api: Api, decoder: dict[str, Any]) -> None:
    job = _succeeded(
        api,
        _submit(api, decoder["model"]["id"],
                {"algorithm": "rtn", "block_size": 32, "op_types": ["MatMul", "Gather"]},
                {"dataset_id": decoder["tokens"], "metric": "perplexity", "batch_sizes": [1],
                 "new_tokens": 4}),
    )  # fmt: skip

    metrics = job["steps"][0]["metrics"]
    # 7 projections in each of 2 layers, the output head and the token embedding.
    assert (
        metrics["quantized_nodes"] == 16 and metrics["float_matmul_nodes"] + metrics["quantized_nodes"] > 16
    )
    assert job["comparison"]["candidate"]["accuracy"]["perplexity"] > 1


@pytest.mark.parametrize(
    "params",
    [
        {"algorithm": "rtn", "float_zero_points": True},
        {"algorithm": "hqq", "op_types": ["MatMul", "Gather"]},
    ],
    ids=["rtn-float-zero-points", "hqq-and-the-embedding"],
)
def test_float_zero_points_run_as_integer_ones_plus_offsets(
    api: Api, decoder: dict[str, Any], params: dict[str, Any]
) -> None:
    job = _succeeded(
        api,
        _submit(api, decoder["model"]["id"], {**params, "block_size": 32},
                {"dataset_id": decoder["tokens"], "max_perplexity_increase": 0.2, "batch_sizes": [1],
                 "new_tokens": 4}),
    )  # fmt: skip

    metrics = job["steps"][0]["metrics"]
    # Every quantized projection (7 in each of 2 layers, and the head) carries its offset term; the
    # embedding table, when asked for, is quantized by rtn with integer zero points.
    assert metrics["float_zero_point_nodes"] == 15
    assert metrics["quantized_nodes"] == 15 + ("Gather" in params.get("op_types", []))
    assert job["comparison"]["verdict"]["within_accuracy_budget"] is True


@pytest.fixture
def workers_without_gptq() -> Iterator[None]:
    """The live worker's registered capabilities, with gptq taken out for one test."""
    with new_session() as session:
        rows = session.scalars(select(Worker)).all()
        saved = {row.id: row.capabilities for row in rows}
        for row in rows:
            offered = (row.capabilities or {}).get("weight_only_algorithms", [])
            row.capabilities = {"weight_only_algorithms": [name for name in offered if name != "gptq"]}
        session.commit()
    yield
    with new_session() as session:
        for row in session.scalars(select(Worker)).all():
            row.capabilities = saved.get(row.id, row.capabilities)
        session.commit()


def test_the_worker_registers_the_algorithms_its_onnxruntime_offers(api: Api) -> None:
    with new_session() as session:
        reports = [row.capabilities for row in session.scalars(select(Worker)).all()]

    assert {"weight_only_algorithms": ["rtn", "gptq", "hqq"]} in reports


def test_an_algorithm_no_worker_offers_is_refused_before_queuing(
    api: Api, decoder: dict[str, Any], workers_without_gptq: None
) -> None:
    params = {"algorithm": "gptq", "dataset_id": decoder["tokens"]}
    response = _submit(api, decoder["model"]["id"], params, {"batch_sizes": [1]})

    body = assert_problem(response, 409, "no-capable-worker")
    assert body["algorithm"] == "gptq" and "gptq" in body["detail"] and "gptq" not in body["available"]
    assert api.get("/v1/jobs").json()["items"] == []
    accepted = _submit(api, decoder["model"]["id"], {"algorithm": "rtn"}, {"batch_sizes": [1]})
    assert accepted.status_code == 202, accepted.text


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"algorithm": "hqq", "symmetric": True}, "asymmetric"),
        ({"algorithm": "gptq"}, "dataset_id"),
        ({"algorithm": "rtn", "block_size": 48}, "power of 2"),
        ({"algorithm": "rtn", "bits": 8, "op_types": ["Gather"]}, "4 bits"),
        ({"algorithm": "hqq", "float_zero_points": False}, "float by construction"),
        ({"algorithm": "rtn", "float_zero_points": True, "symmetric": True}, "asymmetric"),
    ],
)
def test_incoherent_params_are_422(
    api: Api, decoder: dict[str, Any], params: dict[str, Any], fragment: str
) -> None:
    body = assert_problem(_submit(api, decoder["model"]["id"], params, {}), 422, "invalid-params")
    assert fragment in body["detail"]


def _with_tokens(params: dict[str, Any], tokens: str) -> dict[str, Any]:
    """`params` with every "TOKENS" placeholder, nested ones too, replaced by the dataset id."""
    return {
        key: _with_tokens(value, tokens)
        if isinstance(value, dict)
        else tokens
        if value == "TOKENS"
        else value
        for key, value in params.items()
    }


@pytest.mark.parametrize(
    ("technique", "params"),
    [
        ("optimize", {"dataset_id": "TOKENS"}),
        ("quantize.auto", {"dataset_id": "TOKENS"}),
        ("quantize.static", {"dataset_id": "TOKENS"}),
        ("distill", {"dataset_id": "TOKENS", "student": {"sparsity": 0.5}}),
        ("prune.structured", {"sparsity": 0.3}),
        ("prune.magnitude", {"sparsity": 0.5, "finetune": {"dataset_id": "TOKENS"}}),
        ("export.torch", {}),
    ],
)
def test_a_step_that_cannot_run_on_a_decoder_is_refused_with_what_to_use_instead(
    api: Api, decoder: dict[str, Any], technique: str, params: dict[str, Any]
) -> None:
    """They used to fail in the worker: a missing attention_mask array, or an IndexError in the bridge."""
    step = {"technique": technique, "params": _with_tokens(params, decoder["tokens"])}
    response = api.post("/v1/jobs", json={"model_id": decoder["model"]["id"], "steps": [step]})
    body = assert_problem(response, 422, "invalid-params")
    assert "decoder" in body["detail"] and "quantize.weight_only" in body["detail"]
    assert body["errors"][0]["loc"] == ["steps", 0, "technique"]


def test_perplexity_needs_a_decoder_and_token_ids(
    api: Api, decoder: dict[str, Any], matmul_mlp_onnx: Path, tmp_path: Path
) -> None:
    classifier = api.wait_model(api.upload("models", matmul_mlp_onnx).json()["id"])
    digits = api.upload("datasets", model_zoo.write_dataset(tmp_path / "digits.npz")).json()["id"]
    np.savez(tmp_path / "floats.npz", input_ids=np.zeros((4, 8), np.float32))
    floats = api.upload("datasets", tmp_path / "floats.npz").json()["id"]

    not_decoder = _submit(api, classifier["id"], {}, {"dataset_id": digits, "metric": "perplexity"})
    assert "not a decoder" in assert_problem(not_decoder, 422, "invalid-params")["detail"]
    not_tokens = _submit(api, decoder["model"]["id"], {}, {"dataset_id": floats, "metric": "perplexity"})
    assert "token ids" in assert_problem(not_tokens, 422, "dataset-mismatch")["detail"]
    wrong_metric = _submit(
        api, decoder["model"]["id"], {}, {"metric": "top1", "max_perplexity_increase": 0.1}
    )
    assert "max_perplexity_increase" in assert_problem(wrong_metric, 422, "validation-error")["detail"]


def test_a_model_without_matmul_weights_fails_with_nothing_to_quantize(
    api: Api, conv_only_onnx: Path
) -> None:
    model = api.wait_model(api.upload("models", conv_only_onnx).json()["id"])

    response = _submit(api, model["id"], {"algorithm": "rtn"}, {"batch_sizes": [1]})
    assert response.status_code == 202, response.text
    job = api.wait_job(response.json()["id"])

    assert job["status"] == "failed"
    assert job["error"]["type"].endswith("/nothing-to-quantize") and job["error"]["status"] == 422
    assert "quantize.static" in job["error"]["detail"]


@pytest.fixture
def conv_only_onnx(tmp_path: Path) -> Path:
    """A convolution-only network (a fully convolutional head): no MatMul or Gather weight at all."""
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 10, 8), torch.nn.Flatten()
    ).eval()
    return model_zoo.export_onnx(net, tmp_path / "conv_only.onnx")
