"""export.torch: the bridged model as a torch.export program (.pt2), fp32 or torchao int8 Linear layers."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from engine.contract import StepContext, StepOutcome, TechniqueError
from engine.errortext import summary
from service.catalog.export_torch import TorchExportParams
from service.failures import ConversionFailed


def run(model_path: Path, output_path: Path, params: TorchExportParams, ctx: StepContext) -> StepOutcome:
    """Bridge the model to torch, export it (int8 Linear layers on request), and time it in torch."""
    import torch
    from torch import nn

    from engine.bridge import from_onnx
    from engine.bridge.export import runnable_inputs
    from engine.techniques.export.torch_dims import input_dims
    from engine.techniques.export.torch_timing import time_program

    torch.set_num_threads(ctx.threads)
    ctx.progress(0.1, "bridging the model to torch")
    module = from_onnx(Path(model_path)).eval()
    examples, _ = runnable_inputs(module)
    exported_module: nn.Module = module
    warnings: list[str] = []
    linears = sum(isinstance(layer, nn.Linear) for layer in module.layers.values())
    if params.weights == "int8":
        exported_module = _int8_linears(copy.deepcopy(module))
        if not linears:
            warnings.append(
                "the model has no Linear layer (Gemm / MatMul by a constant): nothing became int8"
            )
    ctx.progress(0.3, "exporting with torch.export")
    program = _export(exported_module, examples)
    torch.export.save(program, str(output_path))
    ctx.progress(0.6, "timing the program against the fp32 torch module")
    timing = time_program(
        module, program.module(), Path(model_path),
        batch_sizes=params.batch_sizes, examples=examples, budget_s=params.timing_budget_s,
        threads=ctx.threads,
    )  # fmt: skip
    warnings += timing.warnings(params.weights)
    free, bounded = input_dims(program, [spec.name for spec in module.inputs])
    if bounded:
        warnings.append(
            "torch.export accepts some dims only within a range (the graph's shape constraints, proven"
            f" at the example size it traced with): {bounded}; inputs outside it are refused by the program"
        )
    metrics: dict[str, Any] = {
        "format": "torch.export (.pt2)",
        "weights": params.weights,
        "int8_linear_layers": linears if params.weights == "int8" else 0,
        "dynamic_dims": free,
        "bounded_dims": bounded,
        "torch": torch.__version__,
        **timing.as_metrics(),
    }
    if params.weights == "int8":
        import torchao

        metrics["torchao"] = torchao.__version__
        warnings.append(PICKLED_INT8)
    return StepOutcome(metrics=metrics, warnings=warnings)


def _int8_linears(module: Any) -> Any:
    """Every nn.Linear as torchao's int8 dynamic-activation, int8-weight layer."""
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    quantize_(module, Int8DynamicActivationInt8WeightConfig())
    return module


def _export(module: Any, examples: list[Any]) -> Any:
    """torch.export with every symbolic ONNX dim left for torch to keep dynamic where the graph allows."""
    import torch

    from engine.bridge import OnnxModule

    auto = torch.export.Dim.AUTO
    shapes = tuple(
        {axis: auto for axis, dim in enumerate(spec.shape or ()) if not isinstance(dim, int)}
        for spec in module.inputs
    )
    bridged = [part for part in module.modules() if isinstance(part, OnnxModule)]
    for part in bridged:
        part.trace_shapes = True
    try:
        return torch.export.export(module, tuple(examples), dynamic_shapes=(shapes,))
    except Exception as error:  # torch.export raises many types; the message names the construct
        ops = sorted({step.op for step in module.steps if step.op in SHAPE_OPS})
        why = (
            f"; the model computes tensor shapes at run time ({', '.join(ops)}), which torch.export"
            " cannot trace through the bridge"
            if ops
            else ""
        )
        raise TechniqueError(
            ConversionFailed, f"torch.export could not trace the bridged model{why}: {summary(error)}"
        ) from None
    finally:
        for part in bridged:
            part.trace_shapes = False


# torchao keeps int8 weights as tensor subclasses, which torch.export.save can only pickle.
PICKLED_INT8 = (
    "the int8 program stores torchao's quantized weights pickled: torch.export.load needs torchao"
    " imported, and an upload refuses pickled payloads (they can run code), so upload the fp32 export"
    " to compress it again"
)
# ONNX ops that turn a tensor's shape into data: the bridge runs them eagerly, torch.export cannot.
SHAPE_OPS = frozenset({"Shape", "Size"})
