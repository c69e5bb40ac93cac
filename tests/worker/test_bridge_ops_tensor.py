"""Shape, indexing, reduction and arithmetic ops against onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from tests.worker.bridge_models import graph, ints, matches_onnxruntime, node, rand

X4, X3 = rand(2, 3, 5, 5), rand(2, 3, 4)
CASES = {
    "slice-negative-step": graph(
        [node("Slice", ["x", "a", "b", "c", "d"], ["y"])],
        {"x": X3},
        {"a": ints(-1), "b": ints(-100000), "c": ints(2), "d": ints(-2)},
    ),
    "reshape-copy-dim": graph([node("Reshape", ["x", "s"], ["y"])], {"x": X3}, {"s": ints(0, -1)}),
    "gather-negative": graph(
        [node("Gather", ["x", "i"], ["y"], axis=1)], {"x": X3}, {"i": np.array([[-1, 0]], np.int64)}
    ),
    "expand-bidirectional": graph(
        [node("Expand", ["x", "s"], ["y"])], {"x": rand(3, 1)}, {"s": ints(2, 1, 4)}
    ),
    "split-sizes": graph(
        [node("Split", ["x", "s"], ["y", "z"], axis=2)], {"x": X3}, {"s": ints(1, 3)}, outputs=("y", "z")
    ),
    "split-uneven": graph(
        [node("Split", ["x"], ["y", "z"], axis=2, num_outputs=2)],
        {"x": rand(2, 3, 5)},
        outputs=("y", "z"),
        opset=18,
    ),
    "softmax-opset11": graph([node("Softmax", ["x"], ["y"], axis=1)], {"x": X3}, opset=11),
    "reduce-sum-input-axes": graph(
        [node("ReduceSum", ["x", "a"], ["y"], keepdims=0)], {"x": X3}, {"a": ints(0, 2)}
    ),
    "reduce-mean-attr": graph([node("ReduceMean", ["x"], ["y"], axes=[-1])], {"x": X3}),
    "argmax-last": graph(
        [node("ArgMax", ["x"], ["y"], axis=1, select_last_index=1)], {"x": np.ones((2, 4), np.float32)}
    ),
    "range-from-shape": graph(
        [
            node("Shape", ["x"], ["s"]),
            node("Gather", ["s", "i"], ["n"]),
            node("Range", ["zero", "n", "one"], ["r"]),
            node("Cast", ["r"], ["f"], to=onnx.TensorProto.FLOAT),
            node("Add", ["x", "f"], ["y"]),
        ],
        {"x": X3},
        {"i": np.array(2, np.int64), "zero": np.array(0, np.int64), "one": np.array(1, np.int64)},
    ),
    "where-equal": graph(
        [node("Equal", ["x", "x"], ["e"]), node("Where", ["e", "x", "z"], ["y"])],
        {"x": X3},
        {"z": np.float32(0)},
    ),
    "constant-of-shape": graph(
        [
            node("Shape", ["x"], ["s"]),
            node("ConstantOfShape", ["s"], ["y"], value=helper.make_tensor("v", 1, [1], [2.5])),
        ],
        {"x": X3},
    ),
    "cumsum-exclusive-reverse": graph(
        [node("CumSum", ["x", "a"], ["y"], exclusive=1, reverse=1)], {"x": X3}, {"a": ints(1)}
    ),
    "einsum": graph([node("Einsum", ["x", "w"], ["y"], equation="bij,jk->bik")], {"x": X3, "w": rand(4, 2)}),
    "tile-unsqueeze-squeeze": graph(
        [
            node("Tile", ["x", "r"], ["t"]),
            node("Unsqueeze", ["t", "a"], ["u"]),
            node("Squeeze", ["u", "a"], ["y"]),
        ],
        {"x": X3},
        {"r": ints(1, 2, 1), "a": ints(0, -1)},
    ),
    "integer-div-mod": graph(
        [node("Div", ["x", "d"], ["q"]), node("Mod", ["x", "d"], ["r"]), node("Add", ["q", "r"], ["y"])],
        {"x": np.array([-7, 7, -8, 5], np.int64)},
        {"d": np.array([2, -2, 3, 5], np.int64)},
    ),
    "flatten-transpose": graph(
        [node("Transpose", ["x"], ["t"]), node("Flatten", ["t"], ["y"], axis=2)], {"x": X4}
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_tensor_ops_match_onnxruntime(name: str, tmp_path: Path) -> None:
    """Bridged and re-exported, the op reproduces onnxruntime's outputs."""
    matches_onnxruntime(*CASES[name], tmp_path)
