"""quantize.qat: static int8 as quantize.static makes it, then fine-tuned through fake-quant.

The static QDQ model (same calibration, same per-channel choices) fixes where the graph is
quantized; the float graph it was made from is bridged to torch, fake-quant goes where the QDQ
model quantizes, and the module trains with straight-through gradients against the labels and the
float original's outputs. The trained weights (and learned scales) are then written back into the
static model, so the exported graph has exactly quantize.static's QuantizeLinear/DequantizeLinear
layout and runs on the same int8 kernels.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from engine.contract import StepContext, StepOutcome
from service.catalog.quantize_qat import QatParams
from service.catalog.quantize_static import StaticQuantParams

# Share of the step's progress the static calibration takes; export takes the last few percent.
CALIBRATION_SPAN = 0.1
TRAINING_SPAN = (0.1, 0.95)


def _static_params(params: QatParams) -> StaticQuantParams:
    """quantize.static's parameters for the starting point."""
    return StaticQuantParams(
        dataset_id=params.training.dataset_id,
        calibration_method=params.calibration_method,
        percentile=params.percentile,
        per_channel=params.per_channel,
        max_calibration_samples=params.max_calibration_samples,
    )


def _scaled(ctx: StepContext, share: float) -> Any:
    """A progress sink for a sub-step that fills the first `share` of this step."""
    return lambda fraction, message: ctx.progress(share * fraction, message)


def _named(model_path: Path, target: Path) -> Path:
    """The model with a name on every node (how the QDQ model's nodes are matched to the float graph's)."""
    import onnx

    from engine.bridge.support import node_name

    model = onnx.load(str(model_path), load_external_data=False)
    if all(node.name for node in model.graph.node):
        return model_path
    model = onnx.load(str(model_path))
    taken = {node.name for node in model.graph.node}
    for index, node in enumerate(model.graph.node):
        if not node.name:
            node.name = name = node_name(node, index)
            if name in taken:
                node.name = f"{name}_{index}"
            taken.add(node.name)
    onnx.save(model, str(target))
    return target


def run(model_path: Path, output_path: Path, params: QatParams, ctx: StepContext) -> StepOutcome:
    """Quantize statically, fine-tune through fake-quant, write the trained values into the QDQ model."""
    import onnx
    import torch

    from engine.bridge import from_onnx
    from engine.bridge.weights import replace_initializers
    from engine.model_size import save_model
    from engine.techniques.quantize import static
    from engine.techniques.quantize.qat_export import trained_initializers
    from engine.techniques.quantize.qat_module import make_quantization_aware
    from engine.techniques.quantize.qdq_layout import read_layout
    from engine.techniques.train.finetune import finetune, lowered_batch

    torch.set_num_threads(max(1, ctx.threads))
    static_path = ctx.workdir / "qat-static.onnx"
    sub = dataclasses.replace(ctx, progress=_scaled(ctx, CALIBRATION_SPAN))
    source = _named(model_path, ctx.workdir / "qat-named.onnx")
    outcome, float_path = static.quantize(source, static_path, _static_params(params), sub)
    float_model = onnx.load(str(float_path))
    qdq = onnx.load(str(static_path))
    graph = float_model.graph
    tensors = {v.name for v in graph.input} | {name for node in graph.node for name in node.output}
    layout = read_layout(qdq, tensors)
    teacher = from_onnx(onnx.load(str(model_path)))
    student = from_onnx(float_model)
    node_inputs = {node.name: list(node.input) for node in graph.node}
    plan = make_quantization_aware(student, node_inputs, layout, params.learn_scales)
    ctx.progress(CALIBRATION_SPAN, "fine-tuning through fake-quant")
    report = finetune(
        student,
        teacher,
        ctx.dataset(params.training.dataset_id),
        params.training,
        ctx.progress,
        TRAINING_SPAN,
    )
    ctx.progress(TRAINING_SPAN[1], "writing the trained values into the int8 model")
    replace_initializers(qdq, trained_initializers(plan))
    save_model(qdq, output_path)
    warnings = list(outcome.warnings) + lowered_batch(report)
    if plan.frozen:
        warnings.append(
            f"{len(plan.frozen)} layers were kept as calibrated, not trained (their trained values have no "
            f"place in the int8 model): {', '.join(plan.frozen[:5])}"
        )
    metrics = {
        **outcome.metrics,
        "learn_scales": params.learn_scales,
        "fake_quantized": {
            "activations": len(plan.by_tensor),
            "weights": sum(1 for w in plan.weights if w.quantizer),
        },
        "training": report,
    }
    return StepOutcome(metrics=metrics, warnings=warnings)
