"""quantize.static on the digits models: QDQ int8, smaller, accurate; calibration data checked, streamed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from pydantic import ValidationError

from engine.contract import StepContext, StepOutcome, TechniqueError
from engine.techniques.quantize import static as quantize_static
from engine.techniques.quantize.int8.calibration import ModelInput, NpzCalibrationReader, model_inputs
from service.catalog.base import referenced_dataset_ids
from service.catalog.quantize_static import STATIC_TECHNIQUES, StaticQuantParams
from tests import model_zoo


def _quantize(model: Path, dataset: Path, tmp_path: Path, **params: Any) -> tuple[StepOutcome, Path]:
    output = tmp_path / "int8.onnx"
    work = tmp_path / "work"
    work.mkdir(parents=True, exist_ok=True)
    context = StepContext(workdir=work, datasets={"calibration": dataset})
    outcome = quantize_static.run(
        model, output, StaticQuantParams(dataset_id="calibration", **params), context
    )
    return outcome, output


def _top1(path: Path) -> float:
    images, labels = model_zoo.digits()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return float(np.mean(session.run(None, {"x": images})[0].argmax(1) == labels))


def _op_types(path: Path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


@pytest.mark.parametrize("model", ["cnn_onnx", "mlp_onnx"])
def test_int8_model_is_qdq_smaller_and_within_two_points(
    model: str, digits_npz: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    original: Path = request.getfixturevalue(model)
    outcome, output = _quantize(original, digits_npz, tmp_path)
    assert {"QuantizeLinear", "DequantizeLinear"} <= _op_types(output)
    assert output.stat().st_size < original.stat().st_size
    assert abs(_top1(output) - _top1(original)) <= 0.02
    assert outcome.metrics["calibration_samples"] == len(model_zoo.digits()[0])
    assert outcome.warnings == []


@pytest.mark.parametrize("method", ["MinMax", "Entropy", "Percentile"])
def test_every_calibration_method_quantizes_accurately(
    method: str, cnn_onnx: Path, digits_npz: Path, tmp_path: Path
) -> None:
    outcome, output = _quantize(cnn_onnx, digits_npz, tmp_path, calibration_method=method)
    assert outcome.metrics["calibration_method"] == method
    assert outcome.metrics["quantized_ops"]["Conv"] == 2
    assert abs(_top1(output) - _top1(cnn_onnx)) <= 0.02


def test_few_calibration_samples_give_a_warning(mlp_onnx: Path, tmp_path: Path) -> None:
    small = model_zoo.write_dataset(tmp_path / "small.npz", limit=40)
    outcome, output = _quantize(mlp_onnx, small, tmp_path)
    assert outcome.metrics["calibration_samples"] == 40
    assert any("only 40 samples" in warning for warning in outcome.warnings)
    assert "QuantizeLinear" in _op_types(output)


def test_excluded_node_stays_float(cnn_onnx: Path, digits_npz: Path, tmp_path: Path) -> None:
    first_conv = next(n.name for n in onnx.load(str(cnn_onnx)).graph.node if n.op_type == "Conv")
    outcome, _ = _quantize(cnn_onnx, digits_npz, tmp_path, nodes_to_exclude=[first_conv])
    assert outcome.metrics["quantized_ops"]["Conv"] == 1


@pytest.mark.parametrize(
    ("params", "named"),
    [({"nodes_to_exclude": ["no-such-node"]}, "no-such-node"), ({"op_types": ["Frobnicate"]}, "Frobnicate")],
)
def test_bad_selection_is_refused(
    params: dict[str, Any], named: str, mlp_onnx: Path, digits_npz: Path, tmp_path: Path
) -> None:
    with pytest.raises(TechniqueError) as raised:
        _quantize(mlp_onnx, digits_npz, tmp_path, **params)
    assert raised.value.slug == "invalid-params"
    assert named in raised.value.detail


def _images() -> np.ndarray:
    return model_zoo.digits()[0]


@pytest.mark.parametrize(
    ("arrays", "named", "reason"),
    [
        ({"x": _images().reshape(-1, 64)}, "'x'", "shape"),
        ({"x": _images()[:, :, :4, :]}, "'x'", "axis 2"),
        ({"x": (_images() * 16).astype(np.uint8)}, "'x'", "uint8"),
        ({"image": _images()}, "'image'", "not an input"),
        ({"x": _images(), "mask": _images()}, "'mask'", "not an input"),
    ],
)
def test_mismatched_dataset_names_the_array(
    arrays: dict[str, np.ndarray], named: str, reason: str, mlp_onnx: Path, tmp_path: Path
) -> None:
    dataset = tmp_path / "bad.npz"
    np.savez(dataset, allow_pickle=False, **arrays)
    with pytest.raises(TechniqueError) as raised:
        _quantize(mlp_onnx, dataset, tmp_path)
    assert raised.value.slug == "dataset-mismatch"
    assert named in raised.value.detail
    assert reason in raised.value.detail


def test_pickled_arrays_are_refused_without_unpickling(mlp_onnx: Path, tmp_path: Path) -> None:
    dataset = tmp_path / "pickled.npz"
    np.savez(dataset, x=np.array([object()] * 4, dtype=object))
    with pytest.raises(TechniqueError) as raised:
        _quantize(mlp_onnx, dataset, tmp_path)
    assert raised.value.slug == "invalid-dataset"


def test_reader_streams_evenly_spaced_batches_from_a_compressed_npz(mlp_onnx: Path, tmp_path: Path) -> None:
    rows = np.arange(1000 * 64, dtype=np.float64).reshape(1000, 1, 8, 8)
    dataset = tmp_path / "big.npz"
    np.savez_compressed(dataset, x=rows)
    reader = NpzCalibrationReader(dataset, model_inputs(mlp_onnx), batch_size=16, max_samples=100)
    batches = list(iter(reader.get_next, None))
    assert [len(batch["x"]) for batch in batches] == [16] * 6 + [4]
    seen = np.concatenate([batch["x"] for batch in batches])
    assert seen.dtype == np.float32
    np.testing.assert_array_equal(seen[:, 0, 0, 0] // 64, np.arange(100) * 10)


def test_reader_honours_onnxruntime_ranges_and_fixed_batch(tmp_path: Path) -> None:
    dataset = tmp_path / "ten.npz"
    np.savez(dataset, x=np.arange(10 * 3, dtype=np.float32).reshape(10, 3))
    fixed = [ModelInput("x", np.dtype(np.float32), (4, 3))]
    reader = NpzCalibrationReader(dataset, fixed, batch_size=32, max_samples=100)
    assert (reader.batch_size, reader.samples, len(reader)) == (4, 8, 2)
    reader.set_range(1, 2)
    second = reader.get_next()
    assert second is not None and reader.get_next() is None
    reader.set_range(0, 1)
    first = reader.get_next()
    assert first is not None
    assert first["x"].shape == second["x"].shape == (4, 3)
    assert first["x"][0, 0] == 0.0 and second["x"][0, 0] > first["x"][-1, 0]


def test_params_require_a_dataset_and_refuse_unknown_keys() -> None:
    (spec,) = STATIC_TECHNIQUES
    assert spec.name == "quantize.static"
    assert referenced_dataset_ids(StaticQuantParams(dataset_id="d1").model_dump()) == ["d1"]
    with pytest.raises(ValidationError):
        StaticQuantParams()  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        StaticQuantParams(dataset_id="d1", calibration_method="Median")
    with pytest.raises(ValidationError):
        StaticQuantParams(dataset_id="d1", symmetric=True)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="not supported"):
        StaticQuantParams(dataset_id="d1", activation_type="qint8", weight_type="quint8")


def test_pre_processing_leaves_the_working_directory_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.techniques.quantize.preprocess import quantization_preprocess

    # An op symbolic shape inference does not know: onnxruntime dumps its partial graph on giving up.
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["r"]),
            helper.make_node("Mystery", ["r"], ["y"], domain="example.ops"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("example.ops", 1)]
    )
    onnx.save(model, str(tmp_path / "model.onnx"))
    (tmp_path / "step").mkdir()
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")

    quantization_preprocess(Path("../model.onnx"), Path("../step/prepared.onnx"), large=False, warnings=[])

    assert list((tmp_path / "cwd").iterdir()) == []
    assert "sym_shape_infer_temp.onnx" in {p.name for p in (tmp_path / "step").iterdir()}


def test_a_matmul_with_a_two_dimensional_bias_quantizes_per_channel(digits_npz: Path, tmp_path: Path) -> None:
    """MatMul + Add of a [1, N] constant, as jax2tf writes a dense layer (magika's head): the
    pre-processing fuses them into a Gemm whose 2-D bias onnxruntime's per-channel check chokes on."""
    rng = np.random.default_rng(0)
    weight = onnx.numpy_helper.from_array(rng.standard_normal((64, 10)).astype(np.float32) * 0.1, "w")
    bias = onnx.numpy_helper.from_array(rng.standard_normal((1, 10)).astype(np.float32), "b")
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["x"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w"], ["m"]),
            helper.make_node("Add", ["m", "b"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 10])],
        [weight, bias],
    )
    source = tmp_path / "dense.onnx"
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(source)
    )

    _, output = _quantize(source, digits_npz, tmp_path, per_channel=True)

    images = model_zoo.digits()[0]
    expected, got = (
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": images})[0]
        for path in (source, output)
    )
    assert "QuantizeLinear" in _op_types(output)
    assert np.corrcoef(expected.ravel(), got.ravel())[0, 1] > 0.99
