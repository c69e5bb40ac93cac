"""optimize's candidate pipelines, built from the catalog and ordered by expected value.

A short budget must still try the most promising first: dynamic int8 first for MatMul/Gemm/LSTM models
(transformers, MLPs, recurrent nets), static int8 per channel first for convolutional ones; then the
other int8 variants, then pruning at each ratio followed by the quantizers that reuse its pruned
model, and fp16 where it pays (a GPU, or the size objective; CPUs run fp16 slower than fp32);
quantization-aware training last, since it trains.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from service.catalog.optimize import OptimizeParams

KERNEL_OP_TYPES = ["Conv", "MatMul", "Gemm"]
DYNAMIC_KERNEL_OP_TYPES = {"MatMul", "Gemm", "LSTM"}


@dataclass(frozen=True)
class Step:
    """One technique with its params, as a job step would carry it."""

    technique: str
    params: dict[str, Any] = field(default_factory=dict)

    def __hash__(self) -> int:
        # Steps key the cache of built models, so that one pruned model feeds several quantizations.
        return hash((self.technique, json.dumps(self.params, sort_keys=True)))

    def as_dict(self) -> dict[str, Any]:
        """The step as the trial table shows it."""
        return {"technique": self.technique, "params": dict(self.params)}


@dataclass(frozen=True)
class Candidate:
    """A pipeline of steps; its prefix (all but the last step) may be shared with other candidates."""

    steps: tuple[Step, ...]

    @property
    def prefix(self) -> tuple[Step, ...]:
        """The steps whose output this candidate's last step starts from."""
        return self.steps[:-1]


def quantizers(params: OptimizeParams, op_types: set[str]) -> list[Step]:
    """The int8 (and fp16) single steps worth trying on this graph, most promising first."""
    dynamic = [
        Step("quantize.dynamic", {"per_channel": False}),
        Step("quantize.dynamic", {"per_channel": True}),
    ]
    static = [
        Step("quantize.static", {"dataset_id": params.dataset_id, "per_channel": True}),
        Step("quantize.static", {"dataset_id": params.dataset_id, "per_channel": False}),
        # Only the ops with int8 kernels: others (Add, Softmax...) only add rounding and Q/DQ pairs.
        Step("quantize.static", {"dataset_id": params.dataset_id, "op_types": KERNEL_OP_TYPES}),
    ]
    allowed = set(params.techniques)
    dynamic = dynamic if "quantize.dynamic" in allowed and op_types & DYNAMIC_KERNEL_OP_TYPES else []
    static = static if "quantize.static" in allowed else []
    convolutional = "Conv" in op_types
    ordered = [*static[:1], *dynamic[:1], *static[1:], *dynamic[1:]] if convolutional else [*dynamic, *static]
    if "quantize.fp16" in allowed and params.objective == "size":
        ordered.append(Step("quantize.fp16"))
    return ordered


def build(params: OptimizeParams, op_types: set[str], labelled: bool) -> list[Candidate]:
    """Every candidate pipeline, in the order the search tries them."""
    singles = quantizers(params, op_types)
    candidates = [Candidate((step,)) for step in singles]
    # Pruning without fine-tuning loses too much to be worth a trial: it needs labels to train on.
    if "prune.structured" in params.techniques and labelled and params.finetune_epochs > 0:
        for ratio in params.prune_ratios:
            prune = Step(
                "prune.structured",
                {
                    "sparsity": ratio,
                    "finetune": {"dataset_id": params.dataset_id, "epochs": params.finetune_epochs},
                },
            )
            candidates.append(Candidate((prune,)))
            # One pruned model feeds the two most promising quantizers.
            int8 = [step for step in singles if step.technique != "quantize.fp16"]
            candidates += [Candidate((prune, step)) for step in int8[:2]]
    if "quantize.qat" in params.techniques and op_types & set(KERNEL_OP_TYPES) and params.finetune_epochs > 0:
        # Last: it trains, and it only pays where static int8 alone lost accuracy (without labels it
        # distils from the float model).
        training = {"dataset_id": params.dataset_id, "epochs": params.finetune_epochs}
        candidates.append(Candidate((Step("quantize.qat", {"training": training}),)))
    if params.objective == "size":
        # Fewer bytes first: the chains and int8 beat fp16 on size.
        candidates.sort(key=lambda candidate: -len(candidate.steps))
    return candidates
