"""Float zero points: a block's exact minimum kept as a float offset, run on the int4 kernels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine.techniques.quantize import gptq
from engine.techniques.quantize.block_grid import round_to_nearest
from engine.techniques.quantize.block_offsets import add_offset_terms, integer_zero_points


def _two_matmuls(first: np.ndarray, second: np.ndarray) -> onnx.ModelProto:
    """Two MatMuls reading one input (as q/k/v projections do), so their block sums are shared."""
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["y1"], name="first"),
            helper.make_node("MatMul", ["x", "w2"], ["y2"], name="second"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "tokens", first.shape[0]])],
        [
            helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", "tokens", w.shape[1]])
            for name, w in (("y1", first), ("y2", second))
        ],
        [numpy_helper.from_array(first, "w1"), numpy_helper.from_array(second, "w2")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def _run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return [np.asarray(value) for value in session.run(None, {"x": x})]


def _shifted_weight(rng: np.random.Generator, rows: int, columns: int) -> np.ndarray:
    """Blocks whose values sit away from zero (as a Q4_1-dequantized model's often do)."""
    return (rng.standard_normal((rows, columns)) * 0.05 + rng.uniform(0.3, 0.5, columns)).astype(np.float32)


def test_float_offsets_put_each_blocks_minimum_and_maximum_on_the_grid() -> None:
    weight = _shifted_weight(np.random.default_rng(0), 64, 24)

    floating = round_to_nearest(weight, 4, 32, symmetric=False, float_offsets=True).dequantized(32)
    integer = round_to_nearest(weight, 4, 32, symmetric=False, float_offsets=False).dequantized(32)

    for start in (0, 32):
        rows = slice(start, start + 32)
        np.testing.assert_allclose(floating[rows].min(axis=0), weight[rows].min(axis=0), atol=1e-6)
        np.testing.assert_allclose(floating[rows].max(axis=0), weight[rows].max(axis=0), atol=1e-6)
    # An integer zero point must keep 0 on the grid, so an all-positive block wastes part of its range.
    assert np.abs(floating - weight).mean() < 0.7 * np.abs(integer - weight).mean()


@pytest.mark.parametrize("calibrated", [False, True], ids=["rtn", "gptq"])
@pytest.mark.parametrize(("bits", "block_size"), [(4, 16), (4, 32), (8, 32)])
def test_the_nodes_with_offset_terms_compute_the_weights_chosen(
    tmp_path: Path, calibrated: bool, bits: int, block_size: int
) -> None:
    rng = np.random.default_rng(1)
    # 88 input features: not a multiple of the block; an odd number of blocks at 16.
    first, second = _shifted_weight(rng, 88, 40), _shifted_weight(rng, 88, 24)
    feeds = [{"x": rng.standard_normal((2, 12, 88)).astype(np.float32)} for _ in range(3)]

    model = gptq.quantize_model(
        _two_matmuls(first, second), feeds if calibrated else None, set(), tmp_path, bits=bits,
        block_size=block_size, symmetric=False, accuracy_level=0, float_offsets=True,
    )  # fmt: skip

    ops = [node.op_type for node in model.graph.node]
    assert ops.count("MatMulNBits") == 2 and ops.count("Add") == 2
    assert ops.count("MatMul") == 3  # one block sum of x, shared, and one offset product per node
    onnx.checker.check_model(model)
    if calibrated:
        hessian = gptq.hessians(_two_matmuls(first, second), ["x"], feeds, tmp_path)["x"]
        chosen = [
            gptq.quantize_weight(w, hessian, bits, block_size, False, float_offsets=True).dequantized(
                block_size
            )
            for w in (first, second)
        ]
    else:
        chosen = [
            round_to_nearest(w, bits, block_size, False, True).dequantized(block_size)
            for w in (first, second)
        ]
    x = feeds[0]["x"]
    for output, weight in zip(_run(model, x), chosen, strict=True):
        np.testing.assert_allclose(output, x @ weight, rtol=1e-4, atol=1e-4)


def test_float_zero_points_become_integers_plus_offsets_with_the_same_outputs() -> None:
    from onnxruntime.quantization import matmul_nbits_quantizer as nbits

    rng = np.random.default_rng(2)
    model = _two_matmuls(_shifted_weight(rng, 128, 32), _shifted_weight(rng, 128, 16))
    config = nbits.HQQWeightOnlyQuantConfig(block_size=32, bits=4)
    quantizer = nbits.MatMulNBitsQuantizer(model, bits=4, block_size=32, algo_config=config)
    quantizer.process()
    floating = quantizer.model.model
    zero_points = [t for t in floating.graph.initializer if t.name.endswith("_zero_points")]
    assert zero_points and all(t.data_type == TensorProto.FLOAT for t in zero_points)
    x = rng.standard_normal((2, 5, 128)).astype(np.float32)
    expected = _run(floating, x)

    converted = onnx.ModelProto()
    converted.CopyFrom(floating)
    add_offset_terms(converted, integer_zero_points(converted))

    onnx.checker.check_model(converted)
    assert all(
        t.data_type == TensorProto.UINT8
        for t in converted.graph.initializer
        if t.name.endswith("_zero_points")
    )
    for got, want in zip(_run(converted, x), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def _on_a_float_minimum_grid(rng: np.random.Generator, rows: int, columns: int, block: int) -> np.ndarray:
    """A weight already on 4-bit grids with a float minimum per block (what Q4_1 dequantizes to)."""
    q = rng.integers(0, 16, (rows, columns)).astype(np.float32)
    q[::block] = 0  # each block reaches both ends of its grid
    q[1::block] = 15
    blocks = np.arange(rows) // block
    scale = rng.uniform(0.005, 0.02, (rows // block, columns)).astype(np.float32)
    low = rng.uniform(-0.2, 0.05, (rows // block, columns)).astype(np.float32)
    return q * scale[blocks] + low[blocks]


def _quantized_by_the_technique(tmp_path: Path, model: onnx.ModelProto, **params: object) -> onnx.ModelProto:
    from engine.contract import StepContext
    from engine.techniques.quantize import weight_only
    from service.catalog.quantize_weight_only import WeightOnlyParams

    source, output = tmp_path / "model.onnx", tmp_path / "quantized.onnx"
    onnx.save(model, str(source))
    weight_only.run(source, output, WeightOnlyParams.model_validate(params), StepContext(workdir=tmp_path))
    return onnx.load(str(output))


def _relative_error(model: onnx.ModelProto, x: np.ndarray, weights: tuple[np.ndarray, ...]) -> float:
    outputs = _run(model, x)
    return float(
        sum(np.linalg.norm(got - x @ w) for got, w in zip(outputs, weights, strict=True))
        / sum(np.linalg.norm(x @ w) for w in weights)
    )


def test_rtn_with_float_zero_points_keeps_a_weight_on_a_float_minimum_grid_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    weights = _on_a_float_minimum_grid(rng, 64, 32, 32), _on_a_float_minimum_grid(rng, 64, 16, 32)
    model = _quantized_by_the_technique(
        tmp_path,
        _two_matmuls(*weights),
        algorithm="rtn",
        block_size=32,
        accuracy_level=0,
        float_zero_points=True,
    )
    assert _relative_error(model, rng.standard_normal((2, 3, 64)).astype(np.float32), weights) < 1e-5


def test_hqq_starts_from_the_exact_zero_points_and_ends_closer_than_onnxruntimes_rounded_start(
    tmp_path: Path,
) -> None:
    from onnxruntime.quantization import matmul_nbits_quantizer as nbits

    rng = np.random.default_rng(6)
    # Heavy-tailed weights, as trained layers have: measured 0.094 against onnxruntime's 0.096.
    weights = tuple((rng.standard_t(3, (256, n)) * 0.05).astype(np.float32) for n in (64, 32))
    ours = _quantized_by_the_technique(
        tmp_path, _two_matmuls(*weights), algorithm="hqq", block_size=32, accuracy_level=0
    )
    config = nbits.HQQWeightOnlyQuantConfig(block_size=32, bits=4)
    stock = nbits.MatMulNBitsQuantizer(_two_matmuls(*weights), bits=4, block_size=32, algo_config=config)
    stock.process()

    x = rng.standard_normal((4, 8, 256)).astype(np.float32)
    assert _relative_error(ours, x, weights) < _relative_error(stock.model.model, x, weights)
