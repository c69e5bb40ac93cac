"""quantize.qat on the digits CNN: quantize.static's QDQ layout, trained values written back, labelled
and label-free, frozen and learned scales, after structured pruning, and its errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper
from pydantic import ValidationError

from engine.contract import StepContext, StepOutcome, TechniqueError
from engine.techniques.prune import structured as prune_structured
from engine.techniques.quantize import qat, static
from service.catalog.prune import StructuredPruneParams
from service.catalog.quantize_qat import QatParams
from service.catalog.quantize_static import StaticQuantParams
from tests import model_zoo

# Training tests run on one torch thread (tests/worker/conftest.py).
pytestmark = pytest.mark.usefixtures("one_thread")


def _context(tmp_path: Path, name: str, dataset: Path) -> StepContext:
    work = tmp_path / f"work-{name}"
    work.mkdir(parents=True, exist_ok=True)
    return StepContext(workdir=work, datasets={"train": dataset})


def _qat(model: Path, dataset: Path, tmp_path: Path, **training: Any) -> tuple[StepOutcome, Path]:
    learn = training.pop("learn_scales", False)
    params = QatParams(learn_scales=learn, training={"dataset_id": "train", "epochs": 2, **training})
    output = tmp_path / f"qat-{learn}.onnx"
    return qat.run(model, output, params, _context(tmp_path, "qat", dataset)), output


def _static(model: Path, dataset: Path, tmp_path: Path) -> Path:
    output = tmp_path / "static.onnx"
    static.run(model, output, StaticQuantParams(dataset_id="train"), _context(tmp_path, "static", dataset))
    return output


def _layout(path: Path) -> list[tuple[str, int | None]]:
    """Each node's op type, and the axis of each DequantizeLinear with per-channel scales."""
    model = onnx.load(str(path))
    sizes = {init.name: numpy_helper.to_array(init).size for init in model.graph.initializer}
    return [
        (
            node.op_type,
            next((a.i for a in node.attribute if a.name == "axis"), 1)
            if node.op_type == "DequantizeLinear" and sizes.get(node.input[1], 1) > 1
            else None,
        )
        for node in model.graph.node
    ]


def _top1(path: Path) -> float:
    images, labels = model_zoo.digits("test")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return float(np.mean(session.run(None, {"x": images})[0].argmax(1) == labels))


def _integers(path: Path) -> dict[str, np.ndarray]:
    model = onnx.load(str(path))
    return {
        init.name: numpy_helper.to_array(init)
        for init in model.graph.initializer
        if init.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8, onnx.TensorProto.INT32)
    }


def test_labelled_qat_has_the_static_layout_and_keeps_its_accuracy(
    cnn_onnx: Path, train_npz: Path, tmp_path: Path
) -> None:
    outcome, output = _qat(cnn_onnx, train_npz, tmp_path)
    static_model = _static(cnn_onnx, train_npz, tmp_path)
    assert _layout(output) == _layout(static_model)
    assert any(axis is not None for _, axis in _layout(output))  # the Conv weights are per channel
    assert outcome.metrics["training"]["objective"] == "cross_entropy+distillation"
    assert outcome.metrics["fake_quantized"] == {"activations": 7, "weights": 3}
    assert outcome.metrics["quantized_ops"]["Conv"] == 2
    # The trained weights differ from the static model's, and the model is at least as accurate.
    assert any(
        not np.array_equal(value, _integers(static_model)[name]) for name, value in _integers(output).items()
    )
    assert _top1(output) >= _top1(static_model) - 0.01
    assert _top1(output) >= _top1(cnn_onnx) - 0.02


def test_without_training_the_written_back_model_is_the_static_one(
    cnn_onnx: Path, train_npz: Path, tmp_path: Path
) -> None:
    # A learning rate too small to move a weight by a rounding step: the write-back must reproduce
    # quantize.static's integers and therefore its outputs exactly.
    _, output = _qat(cnn_onnx, train_npz, tmp_path, learning_rate=1e-12, epochs=1)
    static_model = _static(cnn_onnx, train_npz, tmp_path)
    ours, theirs = _integers(output), _integers(static_model)
    assert ours.keys() == theirs.keys()
    for name, value in theirs.items():
        np.testing.assert_array_equal(ours[name], value, err_msg=name)
    images, _ = model_zoo.digits("test")
    run = [
        ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"x": images})[0]
        for p in (output, static_model)
    ]
    np.testing.assert_allclose(run[0], run[1], atol=1e-5)


def test_learned_scales_move_and_keep_the_layout(cnn_onnx: Path, train_npz: Path, tmp_path: Path) -> None:
    outcome, output = _qat(cnn_onnx, train_npz, tmp_path, learn_scales=True, learning_rate=3e-3)
    static_model = _static(cnn_onnx, train_npz, tmp_path)
    assert outcome.metrics["learn_scales"] is True
    assert _layout(output) == _layout(static_model)
    floats = {
        init.name: numpy_helper.to_array(init)
        for init in onnx.load(str(static_model)).graph.initializer
        if init.name.endswith("_scale") and init.data_type == onnx.TensorProto.FLOAT
    }
    learned = {init.name: numpy_helper.to_array(init) for init in onnx.load(str(output)).graph.initializer}
    assert any(not np.allclose(learned[name], value) for name, value in floats.items())
    assert _top1(output) >= _top1(cnn_onnx) - 0.03


def test_label_free_qat_distils_the_float_original(cnn_onnx: Path, tmp_path: Path) -> None:
    images, _ = model_zoo.digits("train")
    inputs_only = tmp_path / "inputs.npz"
    np.savez(inputs_only, x=images)
    outcome, output = _qat(cnn_onnx, inputs_only, tmp_path)
    assert outcome.metrics["training"]["objective"] == "distillation_mse"
    assert "distillation_mse" in outcome.metrics["training"]["epochs"][-1]["validation"]
    assert _top1(output) >= _top1(cnn_onnx) - 0.03


def test_qat_after_structured_pruning(cnn_onnx: Path, train_npz: Path, tmp_path: Path) -> None:
    pruned = tmp_path / "pruned.onnx"
    params = StructuredPruneParams(sparsity=0.5, round_to=1, finetune={"dataset_id": "train", "epochs": 3})
    prune_structured.run(cnn_onnx, pruned, params, _context(tmp_path, "prune", train_npz))
    outcome, output = _qat(pruned, train_npz, tmp_path)
    assert _layout(output) == _layout(_static(pruned, train_npz, tmp_path))
    assert outcome.metrics["quantized_ops"]["Conv"] == 2
    assert _top1(output) >= _top1(pruned) - 0.02


def test_a_dataset_too_small_to_split_is_a_clear_error(cnn_onnx: Path, tmp_path: Path) -> None:
    tiny = model_zoo.write_dataset(tmp_path / "tiny.npz", limit=5)
    with pytest.raises(TechniqueError) as caught:
        _qat(cnn_onnx, tiny, tmp_path, validation_fraction=0.2)
    assert caught.value.slug == "dataset-too-small"
    assert "too few to hold out" in caught.value.detail


def test_a_dataset_for_another_model_is_a_clear_error(cnn_onnx: Path, tmp_path: Path) -> None:
    images, labels = model_zoo.digits("train")
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, x=images.reshape(len(images), -1), labels=labels)
    with pytest.raises(TechniqueError) as caught:
        _qat(cnn_onnx, wrong, tmp_path)
    assert "shape" in caught.value.detail


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"training": {"dataset_id": "d", "epochs": 0}},
        {"training": {"dataset_id": "d"}, "learn_scales": "sometimes"},
        {"training": {"dataset_id": "d"}, "calibration_method": "Guess"},
        {"training": {"dataset_id": "d"}, "activation_type": "qint8"},
    ],
)
def test_bad_params_are_refused(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        QatParams(**params)


def test_a_model_without_node_names_is_trained_through_every_layer(
    cnn_onnx: Path, train_npz: Path, tmp_path: Path
) -> None:
    model = onnx.load(str(cnn_onnx))
    for node in model.graph.node:
        node.name = ""
    unnamed = tmp_path / "unnamed.onnx"
    onnx.save(model, str(unnamed))
    outcome, output = _qat(unnamed, train_npz, tmp_path)
    assert outcome.metrics["fake_quantized"]["weights"] == 3
    assert outcome.warnings == []
    assert _top1(output) >= _top1(cnn_onnx) - 0.02
