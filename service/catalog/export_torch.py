"""export.torch: the model as a torch.export program (.pt2), for deployments that run torch."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from service.catalog.base import Queue, TechniqueParams, TechniqueSpec

BatchSize = Annotated[int, Field(ge=1, le=4096)]


class TorchExportParams(TechniqueParams):
    """fp32 weights, or int8 weights and activations for Linear layers via torchao."""

    weights: Literal["fp32", "int8"] = Field(
        "fp32",
        description='"int8": torchao int8 dynamic-activation / int8-weight quantization of every Linear'
        " layer (other layers stay fp32)",
    )
    batch_sizes: list[BatchSize] = Field(
        default_factory=lambda: [1, 8],
        min_length=1,
        max_length=8,
        description="Batch sizes at which the program is timed against the fp32 torch module",
    )
    timing_budget_s: float = Field(2.0, gt=0, le=60, description="Seconds of timing per batch size")


EXPORT_TECHNIQUES = (
    TechniqueSpec(
        name="export.torch",
        summary="a torch.export .pt2 of the model, fp32 or int8 weights (torchao), for torch deployments",
        queue=Queue.CPU,
        params=TorchExportParams,
        implementation="engine.techniques.export.torch",
        output_suffix=".pt2",
    ),
)
