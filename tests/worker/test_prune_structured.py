"""prune.structured on the digits CNN: tensors really shrink, and fine-tuning recovers accuracy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from engine.contract import StepContext, StepOutcome, TechniqueError
from engine.techniques.prune import structured as prune_structured
from service.catalog.prune import StructuredPruneParams
from tests import model_zoo


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Files shared by this module's tests."""
    return tmp_path_factory.mktemp("structured")


@pytest.fixture(scope="module")
def cnn_onnx(folder: Path) -> Path:
    """The digits CNN from a fixed seed on one thread, so the accuracy figures are reproducible."""
    return model_zoo.export_onnx(model_zoo.trained(model_zoo.DigitsCNN), folder / "cnn.onnx")


@pytest.fixture(scope="module")
def datasets(folder: Path) -> dict[str, Path]:
    """The digits training split with and without labels, and two that do not fit the model."""
    images, labels = model_zoo.digits("train")
    paths = {name: folder / f"{name}.npz" for name in ("labelled", "unlabelled", "misnamed", "integers")}
    np.savez(paths["labelled"], x=images, labels=labels)
    np.savez(paths["unlabelled"], x=images)
    np.savez(paths["misnamed"], image=images, labels=labels)
    np.savez(paths["integers"], x=(images * 16).astype(np.int64), labels=labels)
    return paths


def predict(path: Path) -> np.ndarray:
    """Logits of a model on the digits test split."""
    images, _ = model_zoo.digits("test")
    return ort.InferenceSession(str(path)).run(None, {"x": images})[0]


def top1(path: Path) -> float:
    """Test-split accuracy of an ONNX model."""
    return float((predict(path).argmax(1) == model_zoo.digits("test")[1]).mean())


def prune(
    source: Path,
    target: Path,
    datasets: dict[str, Path] | None = None,
    messages: list[str] | None = None,
    **params: object,
) -> StepOutcome:
    """Run the technique, collecting progress messages."""
    sink = messages if messages is not None else []
    ctx = StepContext(
        workdir=target.parent, datasets=datasets or {}, progress=lambda _, text: sink.append(text)
    )
    return prune_structured.run(source, target, StructuredPruneParams.model_validate(params), ctx)


def stored_parameters(path: Path) -> int:
    """Float weights in a file, counted independently of the technique."""
    inits = onnx.load(str(path)).graph.initializer
    return sum(numpy_helper.to_array(i).size for i in inits if i.data_type == onnx.TensorProto.FLOAT)


def test_half_the_channels_really_go(cnn_onnx: Path, tmp_path: Path) -> None:
    """Both coupled convs drop to 8 channels, parameters and file shrink, the interface is unchanged."""
    out = tmp_path / "pruned.onnx"
    outcome = prune(cnn_onnx, out, sparsity=0.5)
    channels = outcome.metrics["channels"]
    assert sorted((c["before"], c["after"]) for c in channels.values()) == [(10, 10), (16, 8), (16, 8)]
    assert outcome.metrics["parameters_before"] == stored_parameters(cnn_onnx)
    assert outcome.metrics["parameters_after"] == stored_parameters(out) < 0.4 * stored_parameters(cnn_onnx)
    assert out.stat().st_size < 0.5 * cnn_onnx.stat().st_size
    convs = [
        numpy_helper.to_array(i).shape for i in onnx.load(str(out)).graph.initializer if len(i.dims) == 4
    ]
    assert sorted(convs) == [(8, 1, 3, 3), (8, 8, 3, 3)]
    session = ort.InferenceSession(str(out))
    assert [(v.name, v.shape) for v in session.get_inputs()] == [("x", ["batch", 1, 8, 8])]
    assert [(v.name, v.shape) for v in session.get_outputs()] == [("logits", ["batch", 10])]
    assert predict(out).shape == (360, 10)
    assert any("not fine-tuned" in w for w in outcome.warnings)


def test_finetuning_with_labels_recovers_accuracy(
    cnn_onnx: Path, datasets: dict[str, Path], tmp_path: Path
) -> None:
    """Cross-entropy fine-tuning brings top-1 back within two points of the original."""
    messages: list[str] = []
    finetune = {"dataset_id": "train", "epochs": 10, "learning_rate": 1e-2, "batch_size": 32}
    ds = {"train": datasets["labelled"]}
    outcome = prune(cnn_onnx, tmp_path / "tuned.onnx", ds, messages, sparsity=0.5, finetune=finetune)
    report = outcome.metrics["finetune"]
    assert report["objective"] == "cross_entropy+distillation" and len(report["epochs"]) == 10
    assert report["epochs"][-1]["loss"] < report["epochs"][0]["loss"]
    assert [m for m in messages if m.startswith("epoch ")][-1].startswith("epoch 10/10 loss ")
    assert top1(tmp_path / "tuned.onnx") >= top1(cnn_onnx) - 0.02


def test_distillation_without_labels_tracks_the_original(
    cnn_onnx: Path, datasets: dict[str, Path], tmp_path: Path
) -> None:
    """Without labels the pruned model learns the original's outputs: it agrees with it more."""
    plain = prune(cnn_onnx, tmp_path / "plain.onnx", sparsity=0.5)
    finetune = {"dataset_id": "train", "epochs": 6, "learning_rate": 3e-3}
    ds = {"train": datasets["unlabelled"]}
    tuned = prune(cnn_onnx, tmp_path / "tuned.onnx", ds, sparsity=0.5, finetune=finetune)
    assert tuned.metrics["finetune"]["objective"] == "distillation_mse"
    assert plain.metrics["channels"] == tuned.metrics["channels"]
    reference = predict(cnn_onnx)
    before = np.mean((predict(tmp_path / "plain.onnx") - reference) ** 2)
    after = np.mean((predict(tmp_path / "tuned.onnx") - reference) ** 2)
    assert after < 0.5 * before


def test_dataset_must_match_the_model_inputs(
    cnn_onnx: Path, datasets: dict[str, Path], tmp_path: Path
) -> None:
    """A dataset without the model's input name, or with integers for a float input, fails clearly."""
    finetune = {"dataset_id": "bad", "epochs": 1}
    for kind, expected in (("misnamed", "image"), ("integers", "int64")):
        with pytest.raises(TechniqueError) as caught:
            prune(cnn_onnx, tmp_path / "out.onnx", {"bad": datasets[kind]}, sparsity=0.5, finetune=finetune)
        assert caught.value.slug == "dataset-mismatch" and expected in caught.value.detail
