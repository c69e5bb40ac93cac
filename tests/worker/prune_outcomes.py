"""Running prune.structured in a test and reading what it did: channels per node, the weights left."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from engine.contract import StepContext, StepOutcome
from engine.techniques.prune import structured as prune_structured
from service.catalog.prune import StructuredPruneParams


def prune(source: Path, target: Path, **params: object) -> StepOutcome:
    """Run the technique without fine-tuning."""
    ctx = StepContext(workdir=target.parent)
    return prune_structured.run(source, target, StructuredPruneParams.model_validate(params), ctx)


def channels(outcome: StepOutcome) -> dict[str, tuple[int, int]]:
    """Output channels before and after, by node name."""
    return {name: (c["before"], c["after"]) for name, c in outcome.metrics["channels"].items()}


def weights(path: Path) -> dict[str, np.ndarray]:
    """A model's initializers and Constant node values by name."""
    model = onnx.load(str(path))
    found = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute[0].name == "value":
            found[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return found


def conv_model(
    nodes: list[onnx.NodeProto],
    shapes: tuple[list[object], list[object]],
    weights: dict[str, np.ndarray],
    indices: dict[str, list[int]],
) -> onnx.ModelProto:
    """A graph from `x` to `y` (their shapes), float `weights` and int64 `indices` as initializers."""
    body = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, shapes[0])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, shapes[1])],
        [numpy_helper.from_array(value.astype(np.float32), name) for name, value in weights.items()]
        + [numpy_helper.from_array(np.array(value, np.int64), name) for name, value in indices.items()],
    )
    return helper.make_model(body, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
