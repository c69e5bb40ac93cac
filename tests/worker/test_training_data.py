"""Training datasets: a scalar model input is one value that goes with every sample and batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from engine.bridge import from_onnx
from engine.contract import TechniqueError
from engine.techniques.train.data import load_dataset, split
from tests import model_zoo


def _gained_classifier(path: Path) -> Path:
    """digits pixels (batch, 64) -> MatMul -> times a scalar input `gain` -> 10 scores."""
    weight = np.random.default_rng(0).standard_normal((64, 10)).astype(np.float32) / 8
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["pixels", "weight"], ["scores"]),
            helper.make_node("Mul", ["scores", "gain"], ["logits"]),
        ],
        "gained",
        [
            helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 64]),
            helper.make_tensor_value_info("gain", TensorProto.FLOAT, []),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        [numpy_helper.from_array(weight, "weight")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))
    return path


def test_a_scalar_input_goes_with_every_batch_and_split(tmp_path: Path) -> None:
    module = from_onnx(_gained_classifier(tmp_path / "gained.onnx")).eval()
    images, labels = model_zoo.digits("train")
    np.savez(
        tmp_path / "train.npz", pixels=images[:40].reshape(40, 64), gain=np.float32(2.0), labels=labels[:40]
    )

    samples = load_dataset(tmp_path / "train.npz", module)
    train, held_out = split(samples, 0.25, seed=0)

    assert (len(samples), len(train), len(held_out or [])) == (40, 30, 10)
    batch = train.take(torch.arange(8))
    assert batch.inputs[0].shape == (8, 64) and batch.inputs[1].dim() == 0 and batch.labels is not None
    with torch.no_grad():
        doubled = module(*batch.inputs)
        once = module(batch.inputs[0], torch.tensor(1.0))
    torch.testing.assert_close(doubled, 2 * once)


def test_a_scalar_input_given_per_sample_values_is_a_mismatch(tmp_path: Path) -> None:
    module = from_onnx(_gained_classifier(tmp_path / "gained.onnx")).eval()
    images, _ = model_zoo.digits("train")
    np.savez(tmp_path / "train.npz", pixels=images[:8].reshape(8, 64), gain=np.full(8, 2.0, np.float32))
    with pytest.raises(TechniqueError) as raised:
        load_dataset(tmp_path / "train.npz", module)
    assert raised.value.slug == "dataset-mismatch" and "'gain'" in raised.value.problem.detail
