"""distill on real digits models: labelled and label-free, uploaded, derived and previous-step students,
feature matching through adapters, and the errors a user can cause."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from engine.contract import JOB_MODEL, StepContext, TechniqueError
from engine.ingest import ingest_model
from engine.techniques.prune import structured as prune_structured
from engine.techniques.train import distill
from service.catalog.distill import DistillParams
from service.catalog.prune import StructuredPruneParams
from tests import model_zoo

# The digits CNN's intermediate tensors (torch's exporter names them after the module path).
STEM = "/stem/stem.2/Relu_output_0"
BLOCK = "/Relu_output_0"


# Training tests run on one torch thread (tests/worker/conftest.py).
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def inputs_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits training images without labels: what a service's users usually have."""
    images, _ = model_zoo.digits("train")
    path = tmp_path_factory.mktemp("distill") / "inputs.npz"
    np.savez(path, x=images)
    return path


@pytest.fixture(scope="module")
def small_mlp_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained 16-unit MLP whose output has another name than the teacher's."""
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("distill") / "student.onnx"
    return model_zoo.export_onnx(model_zoo.DigitsMLP(hidden=16).eval(), path, output_name="scores")


def test_accuracy(path: Path) -> float:
    """Top-1 of an ONNX model on the digits test split (never seen in training), via onnxruntime."""
    images, labels = model_zoo.digits("test")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"x": images})
    return float((np.asarray(logits).argmax(1) == labels).mean())


test_accuracy.__test__ = False  # type: ignore[attr-defined]


def distil(
    model: Path, out: Path, data: Path, models: dict[str, Path] | None = None, **params: object
) -> dict:
    """Run the technique with `data` as dataset "d"; returns its metrics."""
    ctx = StepContext(workdir=out.parent, datasets={"d": data}, models=models or {})
    validated = DistillParams.model_validate({"dataset_id": "d", **params})
    return distill.run(model, out, validated, ctx).metrics


def test_a_derived_student_learns_from_labels_and_teacher_and_passes_ingest(
    cnn_onnx: Path, train_npz: Path, tmp_path: Path
) -> None:
    out = tmp_path / "student.onnx"
    metrics = distil(cnn_onnx, out, train_npz, student={"sparsity": 0.5}, epochs=6, learning_rate=3e-3)

    report = metrics["distill"]
    assert metrics["student"] == "derived" and metrics["parameters_after"] < metrics["parameters_teacher"]
    assert report["objective"] == "cross_entropy+distillation_kl"
    assert report["device"] == "cpu"  # this machine has no GPU: tests/gpu covers the other path
    assert len(report["epochs"]) == 6 and report["best_epoch"] >= 1
    assert report["after"]["top1"] > report["before"]["top1"]
    teacher, student = test_accuracy(cnn_onnx), test_accuracy(out)
    assert student >= teacher - 0.05, (student, teacher)
    record = ingest_model(out, tmp_path / "canonical.onnx", tmp_path / "work")
    assert [spec["name"] for spec in record["signature"]["outputs"]] == ["logits"]


def test_label_free_distillation_teaches_an_uploaded_student_the_classes(
    cnn_onnx: Path, inputs_npz: Path, small_mlp_onnx: Path, tmp_path: Path
) -> None:
    out = tmp_path / "student.onnx"
    models = {"s1": small_mlp_onnx}
    metrics = distil(
        cnn_onnx,
        out,
        inputs_npz,
        models,
        student_model_id="s1",
        epochs=40,
        learning_rate=1e-2,
        temperature=4,
        response_loss="kl",
    )

    report = metrics["distill"]
    assert metrics["student"] == "uploaded" and report["objective"] == "distillation_kl"
    # Fidelity, no labels to score: the distance to the teacher and the loss it trained on, which
    # picks the best epoch (KL ignores a constant shift of the logits; the distance does not).
    assert report["after"]["distillation_mse"] < report["before"]["distillation_mse"]
    best = report["epochs"][report["best_epoch"] - 1]["validation"]
    assert best["distillation_loss"] == min(e["validation"]["distillation_loss"] for e in report["epochs"])
    # Never shown a label, the student classifies held-out digits almost as well as the teacher.
    assert test_accuracy(out) >= 0.95 * test_accuracy(cnn_onnx)
    # The artifact has the teacher's interface: its output renamed from "scores" to "logits".
    assert [o.name for o in onnx.load(str(out)).graph.output] == ["logits"]


def test_label_free_auto_matches_logits_by_mse_and_cosine_on_request(
    cnn_onnx: Path, inputs_npz: Path, small_mlp_onnx: Path, tmp_path: Path
) -> None:
    models = {"s1": small_mlp_onnx}
    auto = distil(cnn_onnx, tmp_path / "a.onnx", inputs_npz, models, student_model_id="s1", epochs=1)
    cosine = distil(
        cnn_onnx,
        tmp_path / "c.onnx",
        inputs_npz,
        models,
        student_model_id="s1",
        epochs=1,
        response_loss="cosine",
    )

    assert auto["losses"] == ["mse"] and auto["distill"]["objective"] == "distillation_mse"
    assert cosine["losses"] == ["cosine"]


def test_the_previous_steps_artifact_is_the_student_and_the_jobs_model_the_teacher(
    cnn_onnx: Path, train_npz: Path, tmp_path: Path
) -> None:
    pruned = tmp_path / "pruned.onnx"
    ctx = StepContext(workdir=tmp_path)
    prune_structured.run(cnn_onnx, pruned, StructuredPruneParams(sparsity=0.75, round_to=1), ctx)
    out = tmp_path / "student.onnx"

    metrics = distil(pruned, out, train_npz, {JOB_MODEL: cnn_onnx}, epochs=4, learning_rate=3e-3)

    assert metrics["student"] == "previous_step"
    assert metrics["distill"]["teacher"]["top1"] > 0.9
    assert test_accuracy(out) > test_accuracy(pruned) + 0.1
    assert metrics["parameters_after"] == prune_structured.count_parameters(onnx.load(str(pruned)))


def test_features_of_other_widths_train_through_an_adapter_dropped_at_export(
    cnn_onnx: Path, train_npz: Path, tmp_path: Path
) -> None:
    plain, matched = tmp_path / "plain.onnx", tmp_path / "features.onnx"
    common = {"student": {"sparsity": 0.5, "round_to": 4}, "epochs": 2}
    distil(cnn_onnx, plain, train_npz, **common)
    features = [{"teacher": STEM, "student": STEM, "weight": 1.0}, {"teacher": BLOCK, "student": BLOCK}]

    metrics = distil(cnn_onnx, matched, train_npz, features=features, **common)

    assert metrics["adapters"] == ["pair0", "pair1"]  # 16 teacher channels, 8 student ones
    assert metrics["distill"]["objective"].endswith("+features")
    sizes = [prune_structured.count_parameters(onnx.load(str(path))) for path in (plain, matched)]
    assert sizes[0] == sizes[1] == metrics["parameters_after"]


def test_a_bad_tensor_name_in_features_is_named(cnn_onnx: Path, train_npz: Path, tmp_path: Path) -> None:
    with pytest.raises(TechniqueError) as caught:
        distil(
            cnn_onnx,
            tmp_path / "s.onnx",
            train_npz,
            student={"sparsity": 0.5},
            features=[{"teacher": "no_such_tensor", "student": STEM}],
        )
    assert caught.value.slug == "unknown-tensor" and "no_such_tensor" in caught.value.detail


def test_a_student_with_other_outputs_is_refused(cnn_onnx: Path, train_npz: Path, tmp_path: Path) -> None:
    five = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 5))
    other = model_zoo.export_onnx(five.eval(), tmp_path / "five.onnx")
    with pytest.raises(TechniqueError) as caught:
        distil(cnn_onnx, tmp_path / "s.onnx", train_npz, {"s": other}, student_model_id="s")
    assert caught.value.slug == "incompatible-student" and "(2, 5)" in caught.value.detail


def test_a_dataset_too_small_to_split_is_refused(cnn_onnx: Path, tmp_path: Path) -> None:
    images, labels = model_zoo.digits("train")
    tiny = tmp_path / "tiny.npz"
    np.savez(tiny, x=images[:5], labels=labels[:5])
    with pytest.raises(TechniqueError) as caught:
        distil(cnn_onnx, tmp_path / "s.onnx", tiny, student={"sparsity": 0.5})
    assert caught.value.slug == "dataset-too-small"


def test_the_teacher_cannot_be_its_own_student(cnn_onnx: Path, train_npz: Path, tmp_path: Path) -> None:
    with pytest.raises(TechniqueError) as caught:
        distil(cnn_onnx, tmp_path / "s.onnx", train_npz)
    assert caught.value.slug == "invalid-params" and "both teacher and student" in caught.value.detail
