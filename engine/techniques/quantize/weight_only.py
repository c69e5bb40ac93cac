"""quantize.weight_only: block-wise int4/int8 weights in MatMulNBits (and GatherBlockQuantized) nodes."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.contract import StepContext, StepOutcome, TechniqueError
from service.catalog.quantize_weight_only import WeightOnlyParams
from service.errors import InvalidParams, NoCapableWorker
from service.failures import InvalidModel, NothingToQuantize

if TYPE_CHECKING:
    import onnx

from engine.techniques.quantize.block_offsets import (
    BLOCK_SUMS_SUFFIX,
    OFFSET_SUFFIX,
    add_offset_terms,
    integer_zero_points,
)
from engine.techniques.quantize.gemm_as_matmul import rewrite_gemms
from engine.techniques.quantize.gptq import EXTERNAL_DATA_BYTES as _EXTERNAL_DATA_BYTES

QUANTIZED_OPS = {"MatMulNBits", "GatherBlockQuantized"}


def run(model_path: Path, output_path: Path, params: WeightOnlyParams, ctx: StepContext) -> StepOutcome:
    """Quantize the weights of MatMul (and Gather) nodes with a constant weight, block by block."""
    import onnx

    # The quantizer logs every node it visits at INFO: thousands of lines in the step's log.
    logging.getLogger("onnxruntime.quantization").setLevel(logging.WARNING)
    model = onnx.load(str(model_path))
    unknown = sorted(set(params.nodes_to_exclude) - {node.name for node in model.graph.node})
    if unknown:
        raise TechniqueError(InvalidParams, f"nodes_to_exclude names nodes the model lacks: {unknown}")
    if "Gather" in params.op_types:
        model = _opset_for_int4_gather(model)
    gemms = rewrite_gemms(model, set(params.nodes_to_exclude)) if "MatMul" in params.op_types else 0
    before = _weighted_nodes(model, params.op_types)
    if not before:
        raise TechniqueError(
            NothingToQuantize,
            f"the model has no {'/'.join(params.op_types)} node with a constant weight to quantize;"
            " weight-only quantization is for transformers and language models; for convolutional or"
            " recurrent models use quantize.static or quantize.dynamic",
        )
    ctx.progress(
        0.1, f"quantizing weights ({params.algorithm}, {params.bits}-bit, blocks of {params.block_size})"
    )
    if params.algorithm == "gptq" or params.float_zero_points and params.algorithm == "rtn":
        quantized = _embeddings(_own(model, params, ctx), params)
    elif params.algorithm == "hqq":
        quantized = _onnxruntime(model, params.model_copy(update={"op_types": ["MatMul"]}))
        add_offset_terms(quantized, integer_zero_points(quantized))
        quantized = _embeddings(quantized, params)
    else:
        quantized = _onnxruntime(model, params)
    _set_accuracy_level(quantized, params.accuracy_level)
    large = sum(tensor.ByteSize() for tensor in quantized.graph.initializer) > _EXTERNAL_DATA_BYTES
    onnx.save(quantized, str(output_path), save_as_external_data=large, location=f"{output_path.name}.data")
    ctx.progress(1.0, "quantized")
    census = _census(quantized)
    warnings = []
    left = len(before) - len(params.nodes_to_exclude) - census["quantized_nodes"]
    if left > 0:
        warnings.append(
            f"{left} {'/'.join(params.op_types)} nodes kept float weights: their weight's inner size is"
            f" not a multiple of the block size's constraints, or the weight is not a 2-D constant"
        )
    metrics = {**census, "candidate_nodes": len(before), "gemm_nodes_as_matmul": gemms}
    return StepOutcome(metrics=metrics, warnings=warnings)


def _quantizer(model: onnx.ModelProto, params: WeightOnlyParams) -> Any:
    """onnxruntime's MatMulNBitsQuantizer configured for the algorithm."""
    from onnxruntime.quantization import matmul_nbits_quantizer as nbits

    op_types = tuple(params.op_types)
    symmetric = params.is_symmetric()
    if params.algorithm == "rtn":
        # onnxruntime's native block-wise round-to-nearest (the "default" config) supports symmetric
        # and asymmetric blocks, 4 and 8 bits and Gather; its "RTN" config routes through a
        # per-node Python path without those options.
        config: Any = nbits.DefaultWeightOnlyQuantConfig(
            block_size=params.block_size, is_symmetric=symmetric, accuracy_level=params.accuracy_level,
            op_types_to_quantize=op_types, bits=params.bits,
        )  # fmt: skip
    else:
        config = _require(nbits, "HQQWeightOnlyQuantConfig")(
            block_size=params.block_size, bits=params.bits, op_types_to_quantize=op_types
        )
    quantizer = nbits.MatMulNBitsQuantizer(
        model, bits=params.bits, block_size=params.block_size, is_symmetric=symmetric,
        accuracy_level=params.accuracy_level, nodes_to_exclude=list(params.nodes_to_exclude),
        op_types_to_quantize=op_types, algo_config=config,
    )  # fmt: skip
    if params.algorithm == "hqq":
        quantizer.node_quantizer = _unrounded_hqq(nbits)(config)
    return quantizer


def _unrounded_hqq(nbits: Any) -> Any:
    """onnxruntime's HQQ, starting its search from each block's exact zero point.

    onnxruntime rounds the starting zero point to an integer although the zero points it writes are
    float; rounding moves the grid off the block's own minimum before the search begins. From the
    exact one, SmolLM2-135M int4 in blocks of 32 lost +5.8% perplexity instead of +10.7% (8 windows).
    """

    class UnroundedHqq(nbits.HQQWeightOnlyQuantizer):
        def quantize_internal(self, tensor: Any, *args: Any, **kwargs: Any) -> Any:
            return super().quantize_internal(tensor, *args, **{**kwargs, "round_zero": False})

    return UnroundedHqq


def _own(model: onnx.ModelProto, params: WeightOnlyParams, ctx: StepContext) -> onnx.ModelProto:
    """MatMul weights by this project's GPTQ (gptq.py says why not onnxruntime's) or, for float zero
    points, its round-to-nearest."""
    from engine.techniques.quantize import gptq

    feeds = None
    if params.algorithm == "gptq":
        assert params.dataset_id is not None  # the catalog requires it for gptq
        feeds = TokenReader(ctx, params.dataset_id, params.calibration_samples)
    quantized = gptq.quantize_model(
        model, feeds, set(params.nodes_to_exclude), ctx.workdir,
        bits=params.bits, block_size=params.block_size, symmetric=params.is_symmetric(),
        accuracy_level=params.accuracy_level, float_offsets=params.has_float_zero_points(),
    )  # fmt: skip
    return quantized


def _onnxruntime(model: onnx.ModelProto, params: WeightOnlyParams) -> onnx.ModelProto:
    """`model` quantized by onnxruntime's MatMulNBitsQuantizer."""
    quantizer = _quantizer(model, params)
    quantizer.process()
    result: onnx.ModelProto = quantizer.model.model
    return result


def _embeddings(model: onnx.ModelProto, params: WeightOnlyParams) -> onnx.ModelProto:
    """`model` with its Gather tables quantized by onnxruntime's rtn when asked (whatever the
    algorithm of its MatMuls: only rtn quantizes Gather)."""
    if "Gather" not in params.op_types:
        return model
    tables = params.model_copy(
        update={"algorithm": "rtn", "op_types": ["Gather"], "dataset_id": None, "float_zero_points": None}
    )
    return _onnxruntime(model, tables)


def _require(module: Any, name: str) -> Any:
    """A config class of onnxruntime's quantizer, or the problem the API refuses such jobs with."""
    found = getattr(module, name, None)
    if found is None:
        raise TechniqueError(NoCapableWorker, f"this worker's onnxruntime has no {name}")
    return found


class TokenReader:
    """GPTQ's calibration samples, one per pass, as model feeds (a decoder's with an empty cache)."""

    def __init__(self, ctx: StepContext, dataset_id: str, samples: int) -> None:
        self.path, self.samples, self.signature = ctx.dataset(dataset_id), samples, dict(ctx.signature)
        self._rows: Iterator[dict[str, np.ndarray]] | None = None

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next sample's feeds, or None when the samples are spent."""
        if self._rows is None:
            self._rows = iter(self._feeds())
        return next(self._rows, None)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        # onnxruntime deep-copies the reader and iterates the copy: start afresh each time.
        return iter(self._feeds())

    def rewind(self) -> None:
        """Start again from the first sample."""
        self._rows = None

    def _feeds(self) -> list[dict[str, np.ndarray]]:
        from engine.evaluate.decoder_feeds import step_feeds

        with np.load(self.path, allow_pickle=False) as archive:
            arrays = {name: archive[name][: self.samples] for name in archive.files if name != "labels"}
        layout = self.signature.get("decoder")
        count = len(next(iter(arrays.values())))
        if layout is None:
            return [{name: array[i : i + 1] for name, array in arrays.items()} for i in range(count)]
        ids = arrays["input_ids"]
        mask = arrays.get("attention_mask", np.ones(ids.shape, np.int64))
        return [step_feeds(layout, ids[i : i + 1], mask[i : i + 1]) for i in range(count)]


def _opset_for_int4_gather(model: onnx.ModelProto) -> onnx.ModelProto:
    """Raise the model to opset 21, the first with int4 tensors, which quantized Gather weights need.

    onnxruntime's quantizer only rewrites the opset number, which leaves ops whose attributes became
    inputs (ReduceMean's axes, ...) invalid; the version converter rewrites them properly.
    """
    import onnx
    from onnx import version_converter

    current = next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), 0)
    if current >= 21:
        return model
    try:
        converted = version_converter.convert_version(model, 21)
    except Exception as error:  # the converter raises bare RuntimeErrors and ValueErrors
        raise TechniqueError(
            InvalidModel,
            f"quantizing Gather needs opset 21 (int4 tensors) and this opset-{current} model could not be"
            f" converted ({type(error).__name__}); quantize MatMul only",
        ) from None
    converted.ir_version = max(converted.ir_version, 10)
    onnx.checker.check_model(converted)
    return converted


def _weighted_nodes(model: onnx.ModelProto, op_types: Sequence[str]) -> list[str]:
    """Nodes of the requested types whose weight (MatMul's B, Gather's data) is an initializer."""
    constants = {tensor.name for tensor in model.graph.initializer}
    slot = {"MatMul": 1, "Gather": 0}
    return [
        node.name
        for node in model.graph.node
        if node.op_type in op_types
        and len(node.input) > slot[node.op_type]
        and node.input[slot[node.op_type]] in constants
    ]


def _set_accuracy_level(model: onnx.ModelProto, level: int) -> None:
    """Every MatMulNBits node computes at the requested accuracy level (HQQ and GPTQ leave it unset)."""
    import onnx

    for node in model.graph.node:
        if node.op_type != "MatMulNBits":
            continue
        for attribute in list(node.attribute):
            if attribute.name == "accuracy_level":
                node.attribute.remove(attribute)
        node.attribute.append(onnx.helper.make_attribute("accuracy_level", level))


def _census(model: onnx.ModelProto) -> dict[str, int]:
    """How many nodes now hold block-quantized weights (and of them, with float zero points), and how
    many MatMul/Gather kept float ones."""
    ops = [node.op_type for node in model.graph.node]
    offsets = sum(node.op_type == "Add" and node.name.endswith(OFFSET_SUFFIX) for node in model.graph.node)
    # The offset terms' block sums and products are MatMuls of their own, not float weights.
    sums = sum(
        node.op_type == "MatMul" and node.name.endswith(BLOCK_SUMS_SUFFIX) for node in model.graph.node
    )
    return {
        "quantized_nodes": sum(op in QUANTIZED_OPS for op in ops),
        "float_zero_point_nodes": offsets,
        "float_matmul_nodes": ops.count("MatMul") - offsets - sums,
        "float_gather_nodes": ops.count("Gather"),
    }
