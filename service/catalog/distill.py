"""Knowledge distillation: a student learns the teacher's outputs (and, optionally, its features)."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.catalog.base import NodeName, Queue, TechniqueParams, TechniqueSpec
from service.catalog.training import TrainingParams

MAX_FEATURE_PAIRS = 64


class FeaturePair(BaseModel):
    """An intermediate tensor of the teacher the student's tensor learns to match (MSE)."""

    model_config = ConfigDict(extra="forbid")

    teacher: NodeName = Field(description="Name of a tensor the teacher computes")
    student: NodeName = Field(description="Name of a tensor the student computes")
    weight: float = Field(1.0, gt=0.0, le=1000.0, description="Weight of this pair's MSE in the loss")


class DerivedStudent(BaseModel):
    """A student made from the teacher by removing channels, as prune.structured does."""

    model_config = ConfigDict(extra="forbid")

    sparsity: float = Field(0.5, gt=0.0, lt=1.0, description="Fraction of channels removed in each group")
    round_to: int = Field(8, ge=1, le=1024, description="Kept channel counts rounded up to this multiple")


class DistillParams(TrainingParams, TechniqueParams):
    """Train a student on the teacher's outputs: uploaded, derived by pruning, or the previous step's."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"dataset_id": "<dataset id>", "student": {"sparsity": 0.5}, "epochs": 8},
                {"dataset_id": "<dataset id>", "student_model_id": "<model id>", "temperature": 2.0},
                {
                    "dataset_id": "<dataset id>",
                    "features": [{"teacher": "/Relu_output_0", "student": "/Relu_output_0", "weight": 1.0}],
                },
            ]
        },
    )

    temperature: float = Field(
        1.0, gt=0.0, le=20.0, description="Softening of the class scores the distillation term matches"
    )
    student_model_id: str | None = Field(
        None,
        max_length=64,
        description="An uploaded model (any architecture with the teacher's inputs "
        "and outputs) to train as the student",
    )
    student: DerivedStudent | None = Field(
        None, description="Derive the student from the teacher by structured channel removal"
    )
    teacher_model_id: str | None = Field(
        None,
        max_length=64,
        description="An uploaded teacher (default: the job's model, the original one in a multi-step job)",
    )
    features: list[FeaturePair] = Field(
        default_factory=list,
        max_length=MAX_FEATURE_PAIRS,
        description="Intermediate tensors to match, through a learned 1x1 conv / linear adapter where "
        "widths differ (dropped at export)",
    )
    response_loss: Literal["auto", "kl", "mse", "cosine"] = Field(
        "auto",
        description="How the student's outputs match the teacher's: KL on temperature-softened class "
        "scores, MSE, or cosine distance; `auto` is KL for class scores (labelled data, or an output "
        "made by Softmax/LogSoftmax) and MSE for other outputs",
    )

    @model_validator(mode="after")
    def _one_student(self) -> Self:
        if self.student_model_id is not None and self.student is not None:
            raise ValueError("give `student_model_id` or `student`, not both")
        return self

    def labelled_datasets(self) -> list[tuple[str, str | None]]:
        """The training dataset, whose labels (if any) are classes."""
        return [(self.dataset_id, "top1")]

    def held_out_splits(self) -> list[tuple[str, float]]:
        """The training dataset and the share of it held out."""
        return [(self.dataset_id, self.validation_fraction)]

    def student_is_input(self) -> bool:
        """Whether the student is the step's input model (the previous step's artifact)."""
        return self.student_model_id is None and self.student is None


DISTILL_TECHNIQUES = (
    TechniqueSpec(
        name="distill",
        summary="knowledge distillation into a smaller student (uploaded, pruned from the teacher, or the "
        "previous step's model): softened-output KL x T^2 mixed with labels, optional feature matching",
        queue=Queue.CPU,
        params=DistillParams,
        implementation="engine.techniques.train.distill",
        trains=True,
    ),
)
