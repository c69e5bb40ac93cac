"""Convolution, pooling, resize, normalization and activation ops against onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.worker.bridge_models import graph, ints, matches_onnxruntime, node, rand

X4, X3 = rand(2, 3, 5, 5), rand(2, 3, 4)
CASES = {
    "resize-nearest-half-pixel-down": graph(
        [node("Resize", ["x", "", "s"], ["y"], mode="nearest")],
        {"x": X4},
        {"s": np.array([1, 1, 0.6, 0.6], np.float32)},
    ),
    "resize-nearest-asymmetric-up": graph(
        [
            node(
                "Resize",
                ["x", "", "s"],
                ["y"],
                coordinate_transformation_mode="asymmetric",
                nearest_mode="floor",
            )
        ],
        {"x": X4},
        {"s": np.array([1, 1, 2, 2], np.float32)},
    ),
    "resize-nearest-sizes": graph(
        [node("Resize", ["x", "", "", "z"], ["y"], nearest_mode="round_prefer_ceil")],
        {"x": X4},
        {"z": ints(2, 3, 7, 3)},
    ),
    "resize-linear": graph(
        [node("Resize", ["x", "", "s"], ["y"], mode="linear")],
        {"x": X4},
        {"s": np.array([1, 1, 2, 2], np.float32)},
    ),
    "resize-linear-corners": graph(
        [
            node(
                "Resize",
                ["x", "", "", "z"],
                ["y"],
                mode="linear",
                coordinate_transformation_mode="align_corners",
            )
        ],
        {"x": X4},
        {"z": ints(2, 3, 9, 4)},
    ),
    "pad-reflect": graph(
        [node("Pad", ["x", "p"], ["y"], mode="reflect")], {"x": X4}, {"p": ints(0, 0, 1, 2, 0, 0, 2, 1)}
    ),
    "pad-constant": graph(
        [node("Pad", ["x", "p", "v"], ["y"])],
        {"x": X4},
        {"p": ints(0, 1, 0, 1, 0, 0, 2, 0), "v": np.float32(1.5)},
    ),
    "avgpool-asymmetric": graph(
        [node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], pads=[0, 1, 2, 0], strides=[2, 2])], {"x": X4}
    ),
    "maxpool-same": graph(
        [node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")], {"x": X4}
    ),
    "conv-same-strided": graph(
        [node("Conv", ["x", "w", "b"], ["y"], strides=[2, 2], auto_pad="SAME_UPPER")],
        {"x": X4},
        {"w": rand(4, 3, 3, 3), "b": rand(4)},
    ),
    "conv-asymmetric": graph(
        [node("Conv", ["x", "w"], ["y"], pads=[0, 1, 1, 2])], {"x": X4}, {"w": rand(4, 3, 2, 2)}
    ),
    "conv-dynamic-weight": graph(
        [node("Conv", ["x", "w"], ["y"], group=3)], {"x": X4, "w": rand(6, 1, 3, 3)}
    ),
    "gemm-alpha-beta": graph(
        [node("Gemm", ["x", "w", "c"], ["y"], alpha=0.5, beta=2.0)],
        {"x": rand(2, 3)},
        {"w": rand(3, 4), "c": rand(4)},
    ),
    "gemm-dynamic": graph([node("Gemm", ["x", "w"], ["y"], transA=1)], {"x": rand(3, 2), "w": rand(3, 4)}),
    "matmul-bias": graph(
        [node("MatMul", ["x", "w"], ["t"]), node("Add", ["c", "t"], ["y"])],
        {"x": X3},
        {"w": rand(4, 5), "c": rand(5)},
    ),
    "layernorm-two-axes": graph(
        [node("LayerNormalization", ["x", "s", "b"], ["y"], axis=1)],
        {"x": X3},
        {"s": rand(3, 4), "b": rand(3, 4)},
    ),
    "batchnorm-1d": graph(
        [node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"])],
        {"x": X3},
        {"s": rand(3), "b": rand(3), "m": rand(3), "v": np.abs(rand(3)) + 0.5},
    ),
    "prelu": graph([node("PRelu", ["x", "s"], ["y"])], {"x": X4}, {"s": rand(3, 1, 1)}),
    "activations": graph(
        [
            node("HardSigmoid", ["x"], ["a"], alpha=0.3),
            node("Selu", ["a"], ["b"]),
            node("Elu", ["x"], ["c"]),
            node("LeakyRelu", ["c"], ["d"], alpha=0.2),
            node("Gelu", ["d"], ["e"], approximate="tanh"),
            node("Add", ["b", "e"], ["f"]),
            node("Clip", ["f", "lo"], ["y"]),
        ],
        {"x": X3},
        {"lo": np.float32(-0.1)},
        opset=20,
    ),
    "norms-and-global-pool": graph(
        [
            node("InstanceNormalization", ["x", "s", "b"], ["i"]),
            node("LRN", ["i"], ["l"], size=3),
            node("GlobalMaxPool", ["l"], ["y"]),
        ],
        {"x": X4},
        {"s": rand(3), "b": rand(3)},
    ),
    "embedding": graph(
        [node("Gather", ["t", "x"], ["y"])], {"x": np.array([[1, 4], [0, 9]], np.int64)}, {"t": rand(10, 4)}
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_nn_ops_match_onnxruntime(name: str, tmp_path: Path) -> None:
    """Bridged and re-exported, the op reproduces onnxruntime's outputs."""
    matches_onnxruntime(*CASES[name], tmp_path)
