"""Running prune.structured in a test and reading what it did: channels per node, the weights left."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

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
