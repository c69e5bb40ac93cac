"""quantize.static: int8 QDQ weights and activations, activation ranges calibrated on a dataset."""

from __future__ import annotations

import contextlib
import io
import logging
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from engine.contract import StepContext, StepOutcome, TechniqueError
from engine.model_size import file_needs_side_file
from engine.techniques.quantize.int8 import rules as int8_rules
from engine.techniques.quantize.int8.smoothing import smoothing_warnings
from engine.techniques.quantize.preprocess import quantization_preprocess
from service.catalog.quantize_static import StaticQuantParams
from service.errors import InvalidParams

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)

# Below this many samples activation ranges are often set by a handful of inputs.
MIN_CALIBRATION_SAMPLES = 300


def run(model_path: Path, output_path: Path, params: StaticQuantParams, ctx: StepContext) -> StepOutcome:
    """Calibrate on the dataset, then write a QDQ int8 model."""
    return quantize(model_path, output_path, params, ctx)[0]


def quantize(
    model_path: Path, output_path: Path, params: StaticQuantParams, ctx: StepContext
) -> tuple[StepOutcome, Path]:
    """Write the QDQ int8 model; also return the float graph it quantized (preprocessed, rules applied)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from engine.techniques.quantize.int8.activation_memory import calibration_batch
    from engine.techniques.quantize.int8.calibration import NpzCalibrationReader, model_inputs, sample_shapes

    model = onnx.load(str(model_path), load_external_data=False)
    _check_selection(model, params)
    dataset = ctx.dataset(params.dataset_id)
    reader = NpzCalibrationReader(
        dataset,
        model_inputs(model_path),
        # onnxruntime's calibrator holds every activation of a batch: bound the batch by memory.
        batch_size=calibration_batch(model, sample_shapes(dataset), params.calibration_batch_size),
        max_samples=params.max_calibration_samples,
    )
    warnings = []
    if reader.samples < MIN_CALIBRATION_SAMPLES:
        warnings.append(
            f"calibrated on only {reader.samples} samples (fewer than {MIN_CALIBRATION_SAMPLES}): activation "
            "ranges may not represent production inputs; upload a larger, representative dataset"
        )
    large = file_needs_side_file(model_path)
    source = model_path
    if params.preprocess:
        target = ctx.workdir / "quant-preprocessed.onnx"
        source = quantization_preprocess(model_path, target, large=large, warnings=warnings)
    prepared = int8_rules.prepare(
        Path(source), ctx.workdir / "quant-prepared.onnx", smooth=params.smooth_outliers, large=large
    )
    warnings += smoothing_warnings(prepared.smoothed)
    overrides = {}
    if params.per_channel == "auto":
        overrides = {weight: [{"axis": 0}] for weight in prepared.per_channel_weights}
    ctx.progress(0.1, f"calibrating on {reader.samples} samples ({params.calibration_method})")
    types = {"qint8": QuantType.QInt8, "quint8": QuantType.QUInt8}
    chatter = io.StringIO()
    # onnxruntime's calibrators print progress; stdout may carry the sandbox's messages.
    with contextlib.redirect_stdout(chatter):
        quantize_static(
            str(prepared.path),
            str(output_path),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=params.per_channel is True,
            activation_type=types[params.activation_type],
            weight_type=types[params.weight_type],
            op_types_to_quantize=params.op_types,
            nodes_to_exclude=params.nodes_to_exclude,
            calibrate_method=CalibrationMethod[params.calibration_method],
            use_external_data_format=large,
            extra_options={
                # One batch per calibration pass: onnxruntime otherwise keeps every intermediate
                # activation of every calibration sample in memory until the end.
                "CalibStridedMinMax": 1,
                "CalibPercentile": params.percentile,
                **({"TensorQuantOverrides": overrides} if overrides else {}),
            },
        )
    log.debug("calibration: %s", chatter.getvalue())
    ctx.progress(1.0, "quantized")
    quantized = _quantized_ops(onnx.load(str(output_path), load_external_data=False))
    if not quantized:
        warnings.append("no node was quantized: the model has no op type onnxruntime quantizes statically")
    outcome = StepOutcome(
        metrics={
            "calibration_samples": reader.samples,
            "calibration_batches": len(reader),
            "calibration_batch_size": reader.batch_size,
            "calibration_method": params.calibration_method,
            "quantized_ops": dict(quantized),
            "per_channel": params.per_channel,
            **({"per_channel_weights": len(overrides)} if params.per_channel == "auto" else {}),
            "smoothed_layernorms": [item.as_dict() for item in prepared.smoothed],
        },
        warnings=warnings,
    )
    return outcome, Path(prepared.path)


def _check_selection(model: onnx.ModelProto, params: StaticQuantParams) -> None:
    """Refuse op types onnxruntime cannot quantize statically, and exclusions that name no node."""
    from onnxruntime.quantization.registry import QDQRegistry

    unsupported = sorted(set(params.op_types or ()) - set(QDQRegistry))
    if unsupported:
        raise TechniqueError(
            InvalidParams,
            f"cannot quantize op types {unsupported} statically; supported: {sorted(QDQRegistry)}",
        )
    unknown = sorted(set(params.nodes_to_exclude) - {node.name for node in model.graph.node})
    if unknown:
        raise TechniqueError(InvalidParams, f"nodes_to_exclude names nodes the model lacks: {unknown}")


def _quantized_ops(model: onnx.ModelProto) -> Counter[str]:
    """Op types of nodes that read a dequantized activation or weight."""
    dequantized = {
        output for node in model.graph.node if node.op_type == "DequantizeLinear" for output in node.output
    }
    counts: Counter[str] = Counter()
    for node in model.graph.node:
        if node.op_type not in {"QuantizeLinear", "DequantizeLinear"} and dequantized.intersection(
            node.input
        ):
            counts[node.op_type] += 1
    return counts
