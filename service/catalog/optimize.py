"""optimize: search across techniques within a time budget; parameters, presets and where it lives."""

from __future__ import annotations

from typing import Annotated, Any, Literal, cast

from pydantic import ConfigDict, Field, model_validator
from pydantic.config import JsonDict

from service.catalog.base import Queue, TechniqueParams, TechniqueSpec

SearchTechnique = Literal[
    "quantize.dynamic", "quantize.static", "quantize.fp16", "prune.structured", "quantize.qat"
]
ALL_TECHNIQUES: tuple[SearchTechnique, ...] = (
    "quantize.dynamic",
    "quantize.static",
    "quantize.fp16",
    "prune.structured",
    "quantize.qat",
)
PruneRatio = Annotated[float, Field(gt=0.0, lt=1.0)]
Objective = Literal["latency", "throughput", "size"]

# Each preset is the full set of search settings it stands for; the request's own keys override it.
PRESETS: dict[str, dict[str, Any]] = {
    "cpu-latency": {
        "objective": "latency",
        "batch_size": 1,
        "techniques": ["quantize.dynamic", "quantize.static", "prune.structured", "quantize.qat"],
    },
    "smallest": {
        "objective": "size",
        "batch_size": 8,
        "techniques": ["quantize.dynamic", "quantize.static", "quantize.fp16", "prune.structured"],
    },
    "gpu-throughput": {
        "objective": "throughput",
        "batch_size": 64,
        "techniques": ["quantize.fp16", "quantize.static", "prune.structured"],
    },
}


class OptimizeParams(TechniqueParams):
    """Build candidate pipelines, measure each, and keep the best within the accuracy budget."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"presets": cast(JsonDict, PRESETS)})

    preset: Literal["cpu-latency", "smallest", "gpu-throughput"] | None = Field(
        None,
        description="A name for common settings (`presets` in this schema); explicit keys override it",
    )
    dataset_id: str = Field(
        max_length=64,
        description="Calibration and fine-tuning .npz named after the model inputs (`labels`)",
    )
    eval_dataset_id: str | None = Field(
        None,
        max_length=64,
        description="Evaluation .npz (default: dataset_id); with `labels` scored against them, without"
        " against the float model's outputs (a fidelity floor)",
    )
    objective: Objective = Field("latency", description="What `best` optimises: latency, throughput or size")
    batch_size: int = Field(1, ge=1, le=4096, description="Batch the latency/throughput is measured at")
    techniques: list[SearchTechnique] = Field(
        default_factory=lambda: list(ALL_TECHNIQUES),
        max_length=8,
        description="Techniques candidates may use (prune.structured also chains into the quantizers;"
        " quantize.qat trains static int8 for `finetune_epochs`, tried after the others)",
    )
    max_accuracy_drop: float = Field(
        0.01, ge=0.0, le=1e6, description="Largest accepted loss of the metric (absolute, metric units)"
    )
    metric: Literal["top1", "top5", "mse", "mae", "cosine"] | None = Field(
        None, description="As in quantize.auto: top1 with integer labels, cosine to the float model without"
    )
    prune_ratios: list[PruneRatio] = Field(
        default_factory=lambda: [0.3, 0.5],
        max_length=6,
        description="Structured-pruning ratios tried, each fine-tuned once and reused by every quantizer",
    )
    finetune_epochs: int = Field(3, ge=0, le=1000, description="Epochs of fine-tuning after pruning")
    time_budget_s: float = Field(
        600.0,
        gt=0.0,
        le=86_400.0,
        description="No new candidate starts when it would end past this, less the time kept for the"
        " run-off of the fastest candidates (at most a tenth)",
    )
    drop_confidence: Literal["measured", "upper_bound"] = Field(
        "measured",
        description="What must be within max_accuracy_drop: the drop as measured, or its one-sided 95% upper"
        " bound (the drop plus 1.645 paired standard errors over the evaluation samples), which favours"
        " candidates that flip few answers; every trial reports both",
    )
    max_eval_samples: int = Field(1000, ge=1, le=10_000, description="Evaluation samples per candidate")
    timing_budget_s: float = Field(
        1.0,
        gt=0.0,
        le=60.0,
        description="Seconds of timed runs per candidate, and per contender in the run-off",
    )
    # The judge shared with quantize.auto reads these two; optimize always takes the drop as absolute.
    drop_type: Literal["absolute"] = Field("absolute", description="The drop is in metric units")

    @model_validator(mode="before")
    @classmethod
    def _expand_preset(cls, data: Any) -> Any:
        """A preset fills every setting it names that the request leaves out."""
        if isinstance(data, dict) and isinstance(data.get("preset"), str) and data["preset"] in PRESETS:
            return {**PRESETS[data["preset"]], **data}
        return data

    def labelled_datasets(self) -> list[tuple[str, str | None]]:
        """The evaluation dataset is scored with `metric`."""
        return [(self.eval_dataset_id or self.dataset_id, self.metric)]


# The job's evaluation settings optimize takes as its accuracy budget when its params leave them out.
FROM_EVALUATION = {
    "dataset_id": "eval_dataset_id",
    "metric": "metric",
    "max_accuracy_drop": "max_accuracy_drop",
}


def with_evaluation_defaults(params: dict[str, Any], evaluation: dict[str, Any]) -> dict[str, Any]:
    """optimize's params with the job's evaluation dataset, metric and accuracy budget where unset."""
    inherited = {
        target: evaluation[source]
        for source, target in FROM_EVALUATION.items()
        if evaluation.get(source) is not None and target not in params
    }
    return {**inherited, **params}


OPTIMIZE_TECHNIQUES = (
    TechniqueSpec(
        name="optimize",
        summary="search int8, fp16, structured pruning, prune→quantize chains and QAT within a time budget;"
        " trial table, Pareto frontier, best candidate",
        queue=Queue.CPU,
        params=OptimizeParams,
        implementation="engine.techniques.search.run",
    ),
)
