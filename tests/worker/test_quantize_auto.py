"""quantize.auto on the digits models: the budget, the trial table, and the candidate it returns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from pydantic import ValidationError

from engine.contract import StepContext, StepOutcome
from engine.evaluate.sessions import CHUNK
from engine.techniques.quantize.auto import technique as quantize_auto
from service.catalog import CATALOG
from service.catalog.base import referenced_dataset_ids
from service.catalog.quantize_auto import AutoQuantParams
from tests import model_zoo

EVAL_SAMPLES = 120
FAST = {"timing_budget_s": 0.05, "max_eval_samples": EVAL_SAMPLES}
TRIAL_FIELDS = {
    "trial", "config", "excluded_nodes", "accuracy", "accuracy_drop", "accuracy_drop_bound", "within_budget",
    "latency_ms",
    "latency_percentiles_ms", "speedup", "size_bytes", "seconds",
}  # fmt: skip


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Calibration on training images; evaluation on test images with and without labels."""
    folder = tmp_path_factory.mktemp("auto-data")
    images, _ = model_zoo.digits("train")
    np.savez(folder / "calibration.npz", x=images[:64])
    return {
        "calibration": folder / "calibration.npz",
        "labelled": model_zoo.write_dataset(folder / "labelled.npz", limit=EVAL_SAMPLES),
        "unlabelled": model_zoo.write_dataset(folder / "unlabelled.npz", labels=False, limit=EVAL_SAMPLES),
    }


def _auto(model: Path, folder: Path, datasets: dict[str, Path], **params: Any) -> tuple[StepOutcome, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    output = folder / "auto.onnx"
    context = StepContext(workdir=folder, datasets=datasets)
    options = {**FAST, **params}
    return quantize_auto.run(
        model, output, AutoQuantParams(dataset_id="calibration", **options), context
    ), output


def _logits(path: Path) -> np.ndarray:
    # Chunks as the evaluation runs them: dynamic int8 picks activation scales per batch.
    images = model_zoo.digits()[0][:EVAL_SAMPLES]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate(
        [session.run(None, {"x": images[start : start + CHUNK]})[0] for start in range(0, len(images), CHUNK)]
    )


@pytest.fixture(scope="module")
def impossible(mlp_onnx: Path, datasets: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Any:
    """MSE to the float outputs with no drop allowed: every candidate that quantizes anything misses."""
    folder = tmp_path_factory.mktemp("impossible")
    return _auto(
        mlp_onnx,
        folder,
        datasets,
        eval_dataset_id="unlabelled",
        metric="mse",
        max_accuracy_drop=0.0,
        max_trials=2,
        try_dynamic=False,  # the exclusion search from static trial 0 is what these tests follow
    )


def test_a_budget_the_full_quantization_meets_takes_one_trial(
    mlp_onnx: Path, datasets: dict[str, Path], tmp_path: Path
) -> None:
    # One trial: the dynamic competitor a Gemm model gets is tested in test_quantize_auto_configs.py.
    outcome, output = _auto(
        mlp_onnx, tmp_path, datasets, eval_dataset_id="labelled", max_accuracy_drop=0.05, max_trials=1
    )
    metrics = outcome.metrics
    assert metrics["within_accuracy_budget"] is True
    assert metrics["chosen_trial"] == 0 and metrics["excluded_nodes"] == []
    assert [set(row) for row in metrics["trials"]] == [TRIAL_FIELDS]
    assert metrics["metric"] == "top1" and metrics["measured_against"] == "labels"
    assert metrics["quantized_nodes"] == 3  # the MLP's three Gemm layers
    labels = model_zoo.digits()[1][:EVAL_SAMPLES]
    measured = float(np.mean(_logits(output).argmax(1) == labels))
    assert metrics["accuracy"] == pytest.approx(measured)
    assert metrics["baseline_accuracy"] - measured == pytest.approx(metrics["accuracy_drop"])
    assert "QuantizeLinear" in {node.op_type for node in onnx.load(str(output)).graph.node}


def test_an_impossible_budget_returns_the_least_drop_with_the_trial_table(
    impossible: Any, mlp_onnx: Path
) -> None:
    outcome, output = impossible
    metrics = outcome.metrics
    trials = metrics["trials"]
    assert metrics["within_accuracy_budget"] is False
    assert metrics["search_stopped"] == "max_trials (2) reached"
    assert [row["trial"] for row in trials] == [0, 1]
    assert all(set(row) == TRIAL_FIELDS and row["accuracy_drop"] > 0 for row in trials)
    most_sensitive = metrics["sensitivity"][0]["node"]
    assert trials[0]["excluded_nodes"] == [] and trials[1]["excluded_nodes"] == [most_sensitive]
    best = min(trials, key=lambda row: row["accuracy_drop"])
    assert metrics["chosen_trial"] == best["trial"]
    assert metrics["excluded_nodes"] == best["excluded_nodes"]
    assert any("no candidate met the accuracy budget" in warning for warning in outcome.warnings)
    # The file written is the chosen candidate: its distance to the float outputs is the one reported.
    error = float(np.mean((_logits(output) - _logits(mlp_onnx)) ** 2))
    assert error == pytest.approx(best["accuracy"], rel=1e-4)


def test_the_search_keeps_sensitive_nodes_in_float_until_the_budget_holds(
    impossible: Any, mlp_onnx: Path, datasets: dict[str, Path], tmp_path: Path
) -> None:
    first, second = impossible[0].metrics["trials"]
    # Keeping the top-ranked node in float must cut the error: the ranking finds the sensitive node.
    assert second["accuracy_drop"] < first["accuracy_drop"]
    budget = (first["accuracy_drop"] + second["accuracy_drop"]) / 2
    outcome, _ = _auto(
        mlp_onnx,
        tmp_path,
        datasets,
        eval_dataset_id="unlabelled",
        metric="mse",
        max_accuracy_drop=budget,
        try_dynamic=False,
    )
    metrics = outcome.metrics
    trials = metrics["trials"]
    assert metrics["within_accuracy_budget"] is True
    assert trials[0]["within_budget"] is False
    within = [row for row in trials if row["within_budget"]]
    assert metrics["chosen_trial"] == max(within, key=lambda row: row["speedup"])["trial"]
    assert metrics["excluded_nodes"] and metrics["accuracy_drop"] <= budget
    assert not any("no candidate met" in warning for warning in outcome.warnings)


def test_dynamic_mode_without_labels_scores_agreement_with_the_float_model(
    mlp_onnx: Path, datasets: dict[str, Path], tmp_path: Path
) -> None:
    outcome, output = _auto(
        mlp_onnx, tmp_path, datasets, mode="dynamic", eval_dataset_id="unlabelled", max_accuracy_drop=0.05
    )
    metrics = outcome.metrics
    assert metrics["metric"] == "top1" and metrics["measured_against"] == "float model outputs"
    assert metrics["baseline_accuracy"] == 1.0
    agreement = float(np.mean(_logits(output).argmax(1) == _logits(mlp_onnx).argmax(1)))
    assert metrics["accuracy"] == pytest.approx(agreement)
    assert "MatMulInteger" in {node.op_type for node in onnx.load(str(output)).graph.node}


def test_the_time_budget_bounds_the_search(mlp_onnx: Path, datasets: dict[str, Path], tmp_path: Path) -> None:
    outcome, _ = _auto(
        mlp_onnx, tmp_path, datasets, eval_dataset_id="unlabelled", metric="mse", max_accuracy_drop=0.0,
        time_budget_s=0.001,
    )  # fmt: skip
    assert len(outcome.metrics["trials"]) == 1
    assert outcome.metrics["search_stopped"].startswith("time_budget_s")
    assert outcome.metrics["within_accuracy_budget"] is False


def test_params_are_in_the_catalog_and_validated() -> None:
    spec = CATALOG["quantize.auto"]
    assert spec.params is AutoQuantParams
    params = {"dataset_id": "a", "eval_dataset_id": "b", "max_accuracy_drop": 0.01}
    assert referenced_dataset_ids(AutoQuantParams(**params).model_dump()) == ["a", "b"]
    for bad in ({"max_accuracy_drop": -0.1}, {"max_trials": 0}, {"drop_type": "percent"}, {"tries": 3}):
        with pytest.raises(ValidationError):
            AutoQuantParams(dataset_id="a", **bad)
