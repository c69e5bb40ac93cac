"""quantize.dynamic: int8 weights with onnxruntime's dynamic quantizer; activations quantized at run time."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import onnx

from engine.contract import StepContext, StepOutcome, TechniqueError
from engine.errortext import brief
from engine.techniques.quantize.int8.smoothing import Smoothed, smooth_layernorm_outliers, smoothing_warnings
from engine.techniques.quantize.preprocess import quantization_preprocess
from service.catalog.quantize import DynamicQuantParams
from service.errors import InvalidParams
from service.failures import QuantizationFailed

# onnxruntime turns every Gemm into MatMul + Add before quantizing and names the new MatMul so.
_GEMM_MATMUL_SUFFIX = "_MatMul"
# The op whose weights onnxruntime quantizes dynamically and reuses at every time step.
RECURRENT = "LSTM"


def run(model_path: Path, output_path: Path, params: DynamicQuantParams, ctx: StepContext) -> StepOutcome:
    """Quantize the model's weights to int8 and report which nodes were quantized."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.registry import IntegerOpsRegistry

    supported = sorted({*IntegerOpsRegistry, "Gemm"})
    unknown = sorted(set(params.op_types or ()) - set(supported))
    if unknown:
        why = "; onnxruntime has no int8 GRU kernel" if "GRU" in unknown else ""
        raise TechniqueError(
            InvalidParams, f"cannot quantize op types {unknown} dynamically{why}; supported: {supported}"
        )
    warnings: list[str] = []
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    ctx.progress(0.1, "preprocessing")
    source, preprocessed = _prepared(Path(model_path), ctx.workdir, params.preprocess, warnings)
    smoothed = _smoothed(source, params.smooth_outliers)
    warnings += smoothing_warnings(smoothed)
    model = onnx.load(str(source))
    nodes = {node.name: node.op_type for node in model.graph.node}
    missing = sorted(set(params.nodes_to_exclude) - set(nodes))
    if missing:
        warnings.append(f"nodes_to_exclude names nodes that are not in the model: {missing}")
    requested = set(params.op_types or supported)
    if grus := sum(op_type == "GRU" for op_type in nodes.values()):
        warnings.append(
            f"onnxruntime has no int8 GRU kernel: the model's {grus} GRU node(s) stay float32;"
            " only the layers around them are quantized"
        )
    op_types, excluded = _ort_selection(nodes, requested, set(params.nodes_to_exclude))

    ctx.progress(0.4, "quantizing")
    try:
        quantize_dynamic(
            source,
            Path(output_path),
            op_types_to_quantize=op_types,
            per_channel=_per_channel(params.per_channel, nodes),
            reduce_range=params.reduce_range,
            weight_type=QuantType.QInt8 if params.weight_type == "qint8" else QuantType.QUInt8,
            nodes_to_exclude=excluded,
        )
    except Exception as error:  # the quantizer raises whatever its operator handlers raise
        raise TechniqueError(
            QuantizationFailed,
            f"onnxruntime could not quantize this model: {brief(error)}",
        ) from None
    survivors = {node.name for node in onnx.load(str(output_path), load_external_data=False).graph.node}
    quantized = Counter(
        op_type
        for name, op_type in nodes.items()
        if name not in survivors and name + _GEMM_MATMUL_SUFFIX not in survivors
    )
    kept = Counter(
        op_type
        for name, op_type in nodes.items()
        if op_type in requested and (name in survivors or name + _GEMM_MATMUL_SUFFIX in survivors)
    )
    if not quantized:
        warnings.append(
            f"no node was quantized: the model has no {sorted(requested)} node with constant weights"
            " that onnxruntime can quantize dynamically"
        )
    return StepOutcome(
        metrics={
            "quantized_nodes": sum(quantized.values()),
            "quantized_by_op_type": dict(sorted(quantized.items())),
            "kept_float_by_op_type": dict(sorted(kept.items())),
            "preprocessed": preprocessed,
            **({"smoothed_layernorms": [item.as_dict() for item in smoothed]} if smoothed else {}),
        },
        warnings=warnings,
    )


def _per_channel(choice: bool | str, op_types: dict[str, str]) -> bool:
    """The per_channel choice, "auto" resolved: per channel for recurrent (LSTM) models only."""
    if choice == "auto":
        return RECURRENT in op_types.values()
    return bool(choice)


def _prepared(model_path: Path, workdir: Path, preprocess: bool, warnings: list[str]) -> tuple[Path, bool]:
    """The model after onnxruntime's pre-processing (when asked and possible), every node named."""
    source = model_path
    if preprocess:
        source = quantization_preprocess(
            model_path, workdir / "quantize-dynamic-preprocessed.onnx", large=False, warnings=warnings
        )
    preprocessed = source != model_path
    # Nodes are matched by name before and after quantization, so none may be anonymous.
    model = onnx.load(str(source))
    taken = {node.name for node in model.graph.node}
    for index, node in enumerate(model.graph.node):
        if not node.name:
            node.name = _fresh(f"{node.op_type}_{index}", taken)
    named = workdir / "quantize-dynamic-input.onnx"
    onnx.save(model, str(named))
    return named, preprocessed


def _smoothed(source: Path, smooth: bool) -> list[Smoothed]:
    """Smooth LayerNorm outlier channels in the prepared copy (rewritten in place when any is found)."""
    if not smooth:
        return []
    model = onnx.load(str(source))
    smoothed = smooth_layernorm_outliers(model)
    if smoothed:
        onnx.save(model, str(source))
    return smoothed


def _ort_selection(
    nodes: dict[str, str], requested: set[str], excluded: set[str]
) -> tuple[list[str], list[str]]:
    """onnxruntime's op types and exclusions for the requested types, Gemm included."""
    op_types = set(requested - {"Gemm"})
    if "Gemm" in requested:
        op_types.add("MatMul")
    drop = set(excluded)
    for name, op_type in nodes.items():
        if op_type == "Gemm" and (name in excluded or "Gemm" not in requested):
            drop.add(name + _GEMM_MATMUL_SUFFIX)
        if op_type == "MatMul" and "MatMul" not in requested:
            drop.add(name)
    return sorted(op_types), sorted(drop)


def _fresh(name: str, taken: set[str]) -> str:
    while name in taken:
        name += "_"
    taken.add(name)
    return name
