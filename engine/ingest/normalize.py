"""Normalization at ingest: one clean graph for every technique, or the upload's graph with a note."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any

import onnx

from engine.ingest.equivalent import compare_outputs
from engine.ingest.fusions import fuse

log = logging.getLogger(__name__)

# Weights reach 10^8 elements; the optimizer's defaults stop folding at a few thousand.
FOLD_SIZE_LIMIT = 1 << 28
FALLBACK = "techniques receive the uploaded graph unchanged"
# Per-channel QuantizeLinear / DequantizeLinear (their `axis`) need opset 13; the bridge exports at 13+.
MIN_OPSET = 13


def normalize(model: onnx.ModelProto, signature: Mapping[str, Any]) -> tuple[onnx.ModelProto | None, dict]:
    """The normalized model (None when the upload's graph must be used) and the record of what changed.

    Models below opset 13 are raised to it (per-channel int8 needs it); Constant nodes and
    constant subgraphs (a weight through Identity, Cast or Reshape) become
    initializers, constants are folded and identities removed by the onnxscript optimizer and
    onnx-ir passes, and spelled-out HardSwish and Conv affines are fused (fusions.py); the result
    must compute the upload's outputs on generated example inputs.
    """
    try:
        normalized, named, fusions = _first_prepared(model)
    except Exception as error:  # the optimizer and checker raise many unrelated types
        return None, _fallback(f"normalization failed ({type(error).__name__}: {error})"[:500])
    changes = {**_changes(model, normalized), "free_dims_named": named, "fused": fusions}
    if (
        not (changes["nodes_removed"] or changes["constants_lifted"] or named)
        and len(set(changes["opset"])) == 1
    ):
        return None, {"applied": False, "changes": changes, "note": "the graph was already normalized"}
    verdict = compare_outputs(model, normalized, signature)
    if verdict.problem is not None and fusions:
        # A fused graph rounds differently; where that exceeds the bar, normalize without fusing.
        try:
            normalized, named, _ = _prepared(model, with_fusions=False)
        except Exception as error:  # the optimizer and checker raise many unrelated types
            return None, _fallback(f"normalization failed ({type(error).__name__}: {error})"[:500])
        changes = {**_changes(model, normalized), "free_dims_named": named, "fused": {}}
        verdict = compare_outputs(model, normalized, signature)
    if verdict.problem is not None:
        return None, {**_fallback(verdict.problem), "changes": changes}
    return normalized, {
        "applied": True,
        "changes": changes,
        "max_abs_difference": verdict.max_abs_difference,
        "note": None,
    }


def _first_prepared(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int, dict[str, int]]:
    """The graph prepared with fusions, or without them when the fused one fails a check."""
    try:
        return _prepared(model, with_fusions=True)
    except Exception as error:  # the optimizer and checker raise many unrelated types
        log.info("normalizing without fusions: %s", error)
        return _prepared(model, with_fusions=False)


def _prepared(model: onnx.ModelProto, with_fusions: bool) -> tuple[onnx.ModelProto, int, dict[str, int]]:
    """The optimized, checked and shape-inferred graph, its newly named free dims and its fusions."""
    normalized, fusions = _optimized(_raised_opset(model), with_fusions)
    _restore_empty_inputs(model, normalized)
    named = _name_free_dims(normalized)
    onnx.checker.check_model(normalized)
    return onnx.shape_inference.infer_shapes(normalized), named, fusions


def _raised_opset(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model at opset 13 when it imports an older default opset (the onnx version converter)."""
    version = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), MIN_OPSET)
    if version >= MIN_OPSET:
        return model
    return onnx.version_converter.convert_version(model, MIN_OPSET)


def _optimized(model: onnx.ModelProto, with_fusions: bool) -> tuple[onnx.ModelProto, dict[str, int]]:
    """The model through the optimizer's passes; identities stay where onnx-ir cannot remove them."""
    try:
        return _passes(model, with_fusions, remove_identities=True)
    except ValueError as error:
        # onnx-ir refuses to remove an Identity that hands an outer value to an If or Loop branch's
        # output (silero-vad's branches end so); the pass fails midway, so start again without it.
        log.info("normalizing without removing identities: %s", error)
        return _passes(model, with_fusions, remove_identities=False)


def _passes(
    model: onnx.ModelProto, with_fusions: bool, *, remove_identities: bool
) -> tuple[onnx.ModelProto, dict[str, int]]:
    import onnx_ir as ir
    from onnx_ir.passes import common
    from onnxscript.optimizer import fold_constants

    graph = ir.serde.deserialize_model(model)
    fold_constants(graph, input_size_limit=FOLD_SIZE_LIMIT, output_size_limit=FOLD_SIZE_LIMIT)
    # Every constant becomes an initializer, scalars too: techniques look for weights there.
    common.LiftConstantsToInitializersPass(lift_all_constants=True, size_limit=0)(graph)
    if remove_identities:
        common.IdentityEliminationPass()(graph)
    fusions = fuse(graph) if with_fusions else {}
    common.RemoveUnusedNodesPass()(graph)
    return ir.serde.serialize_model(graph), fusions


def _name_free_dims(model: onnx.ModelProto) -> int:
    """Give the -1 (or 0) dims some converters write for free dims a name, as ONNX spells a free dim."""
    named = 0
    for value in [*model.graph.input, *model.graph.output]:
        for index, dim in enumerate(value.type.tensor_type.shape.dim):
            if dim.HasField("dim_value") and dim.dim_value <= 0:
                dim.dim_param = f"{value.name}_dim{index}"
                named += 1
    return named


def _restore_empty_inputs(original: onnx.ModelProto, normalized: onnx.ModelProto) -> None:
    """Put back the trailing empty inputs the serializer drops (a Pad's '' fill, by node name).

    onnxruntime fuses a Pad whose third input is absent into the next Conv and not one whose third
    input is ''; the fused Conv loses the blocked-layout kernels, and a pitch CNN ran 2x slower.
    """
    empties = {
        (node.name, node.op_type): len(node.input)
        for node in original.graph.node
        if node.name and node.input and node.input[-1] == ""
    }
    for node in normalized.graph.node:
        count = empties.get((node.name, node.op_type))
        if count is not None and len(node.input) < count:
            node.input.extend([""] * (count - len(node.input)))


def _changes(before: onnx.ModelProto, after: onnx.ModelProto) -> dict[str, Any]:
    """Node counts per operator that went away or appeared, and how many constants were lifted."""
    old = Counter(node.op_type for node in before.graph.node)
    new = Counter(node.op_type for node in after.graph.node)
    return {
        "nodes_before": sum(old.values()),
        "nodes_after": sum(new.values()),
        "nodes_removed": dict(sorted((old - new).items())),
        "nodes_added": dict(sorted((new - old).items())),
        "constants_lifted": old["Constant"] - new["Constant"],
        "initializers_before": len(before.graph.initializer),
        "initializers_after": len(after.graph.initializer),
        "opset": [_opset(before), _opset(after)],
    }


def _opset(model: onnx.ModelProto) -> int:
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _fallback(reason: str) -> dict[str, Any]:
    return {"applied": False, "note": f"{FALLBACK}: {reason}"}
