"""OnnxModule back to ONNX, keeping the original input/output names and symbolic dims."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import onnx
import torch
from torch import Tensor

from engine.bridge.dtypes import torch_dtype
from engine.bridge.forms import original_pad_form, restore_pad_forms
from engine.bridge.module import OnnxModule, TensorSpec
from engine.example_shapes import BATCH_EXAMPLE, Dim, Shape, concrete_shapes, first_runnable

# The TorchScript exporter's supported range; older models are raised to the floor.
MIN_OPSET, MAX_OPSET = 13, 20
RUN_ERRORS = (RuntimeError, IndexError, ValueError)
# Ops a bridged layer exports as: its weighted node takes the original node's name back.
WEIGHTED_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul", "Gather", "LSTM", "GRU"})


def _dim_names(spec: TensorSpec) -> dict[int, str]:
    """Dims to keep dynamic: every symbolic or unknown dim, under its original name where it had one."""
    if spec.shape is None:
        return {}
    return {
        i: d if isinstance(d, str) else f"{spec.name}_dim{i}"
        for i, d in enumerate(spec.shape)
        if not isinstance(d, int)
    }


def _specs(module: OnnxModule) -> list[tuple[str, Sequence[Dim]]]:
    """(name, dims) of each input; an input of unknown rank cannot be made up."""
    for spec in module.inputs:
        if spec.shape is None:
            raise ValueError(f"input {spec.name} has no known rank; pass example inputs")
    return [(spec.name, spec.shape or ()) for spec in module.inputs]


def _zeros(module: OnnxModule, shapes: list[Shape]) -> list[Tensor]:
    return [
        torch.zeros(shape, dtype=torch_dtype(spec.elem_type))
        for spec, shape in zip(module.inputs, shapes, strict=True)
    ]


def example_inputs(module: OnnxModule, batch: int = BATCH_EXAMPLE, size: int | None = None) -> list[Tensor]:
    """Zero inputs of the module's signature: symbolic dims are `batch` for dim 0, `size` elsewhere.

    Fixed dims are always kept; `size` defaults to the one `runnable_inputs` found for the module.
    """
    return _zeros(module, concrete_shapes(_specs(module), batch, size or module.example_size))


def runnable_inputs(module: OnnxModule) -> tuple[list[Tensor], dict[str, Tensor]]:
    """Example inputs the model runs on, and every value it computes on them.

    Only symbolic dims vary (engine.example_shapes). The size found is kept on the module, so
    later examples (and the export) use it.
    """

    def run(shapes: list[Shape]) -> tuple[list[Tensor], dict[str, Tensor]]:
        examples = _zeros(module, shapes)
        with torch.no_grad():
            return examples, module.run(examples)

    training = module.training
    module.eval()  # zero inputs must not move batch-norm statistics of a model being fine-tuned
    try:
        found = (module.example_batch, module.example_size)
        batch, size, _, result = first_runnable(_specs(module), run, RUN_ERRORS, first=found)
    finally:
        module.train(training)
    module.example_size, module.example_batch = size, batch
    return result


def to_onnx(
    module: OnnxModule, path: Path, inputs: Sequence[Tensor] | None = None, opset: int | None = None
) -> Path:
    """Export with the TorchScript exporter (BatchNorm folded into Conv, constants folded)."""
    examples = tuple(inputs) if inputs is not None else tuple(runnable_inputs(module)[0])
    specs = [*module.inputs, *module.outputs]
    dynamic = {spec.name: dims for spec in specs if (dims := _dim_names(spec))}
    version = opset or min(max(module.opset, MIN_OPSET), MAX_OPSET)
    training = module.training
    module.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # The tracer warns about every shape it records; the dynamic dims above are what matter.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                examples,
                str(path),
                input_names=[s.name for s in module.inputs],
                output_names=[s.name for s in module.outputs],
                dynamic_axes=dynamic,
                opset_version=version,
                do_constant_folding=True,
                dynamo=False,
            )
    finally:
        module.train(training)
    model = onnx.load(str(path), load_external_data=False)
    _restore_unused_inputs(module, model)
    _restore_layer_names(module, model)
    restore_pad_forms(model, original_pad_form(step.inputs for step in module.steps if step.op == "Pad"))
    onnx.save(model, str(path))
    return path


def _restore_unused_inputs(module: OnnxModule, model: onnx.ModelProto) -> None:
    """Re-declare inputs the tracer dropped because no output depends on them, so callers can feed them."""
    present = {value.name for value in model.graph.input}
    for spec in module.inputs:
        if spec.name not in present:
            dims = list(spec.shape) if spec.shape is not None else None
            model.graph.input.append(onnx.helper.make_tensor_value_info(spec.name, spec.elem_type, dims))


def _restore_layer_names(module: OnnxModule, model: onnx.ModelProto) -> None:
    """Give each layer's exported node its original name back, so later steps and reports can name it."""
    # The tracer names a layer's nodes after the layer's key ("/<key>/Conv"); a layer that
    # exported as exactly one weighted node gets its original node's name, unless another has it.
    original = {step.layer: step.name for step in module.steps if step.layer is not None}
    by_key: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        key = node.name.split("/")[1] if node.name.count("/") >= 2 else None
        if key in original and node.op_type in WEIGHTED_OPS:
            by_key.setdefault(key, []).append(node)
    taken = {node.name for node in model.graph.node}
    for key, nodes in by_key.items():
        if len(nodes) == 1 and original[key] not in taken:
            taken.add(original[key])
            nodes[0].name = original[key]
