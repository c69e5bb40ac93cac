"""Job API schemas."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, AnyUrl, BaseModel, ConfigDict, Field, UrlConstraints, model_validator

from service.settings import get_settings
from service.webhooks.addresses import submit_refusal
from service.webhooks.outcomes import WebhookDelivery

MAX_STEPS = 10  # steps in one job; the worker's time limit for a job is sized from it


def _public_host(url: AnyUrl) -> AnyUrl:
    """Refuse a callback host that is plainly internal now; delivery checks the resolved address again."""
    reason = submit_refusal(url.host or "", get_settings().webhook_allowed_networks)
    if reason is not None:
        raise ValueError(reason)
    return url


CallbackUrl = Annotated[
    AnyUrl,
    UrlConstraints(max_length=2048, allowed_schemes=["http", "https"], host_required=True),
    AfterValidator(_public_host),
]


class StepCreate(BaseModel):
    """One step of a job: a catalog technique and its parameters."""

    model_config = ConfigDict(extra="forbid")

    technique: str = Field(..., min_length=1, max_length=100, examples=["quantize.dynamic"])
    params: dict[str, Any] = Field(default_factory=dict, max_length=64)


class EvaluationCreate(BaseModel):
    """How the result is measured against the original."""

    model_config = ConfigDict(extra="forbid")

    dataset_id: uuid.UUID | None = None
    metric: Literal["top1", "top5", "mse", "mae", "perplexity"] | None = Field(
        None, description="perplexity: language models (decoders), on a dataset of input_ids"
    )
    max_accuracy_drop: float | None = Field(None, ge=0, le=1e6)
    max_perplexity_increase: float | None = Field(
        None, ge=0, le=1e6, description="Largest relative perplexity increase allowed (0.05 = 5%)"
    )
    batch_sizes: list[Annotated[int, Field(ge=1, le=1024)]] = Field(
        default_factory=lambda: [1, 8], min_length=1, max_length=6
    )
    device: Literal["cpu", "cuda"] = Field(
        "cpu", description="where both models are timed; `cuda` needs a live GPU worker (409 otherwise)"
    )
    prompt_length: int | None = Field(
        None,
        ge=1,
        le=4096,
        description="Decoders: prompt tokens prefilled before the first token (default 32)",
    )
    new_tokens: int | None = Field(
        None,
        ge=2,
        le=1024,
        description="Decoders: tokens generated greedily for decode tokens/s (default 32)",
    )

    @model_validator(mode="after")
    def _perplexity_budget(self) -> Self:
        """A perplexity budget implies the perplexity metric and cannot go with another one."""
        if self.max_perplexity_increase is not None:
            if self.metric not in (None, "perplexity"):
                raise ValueError(f"max_perplexity_increase needs metric 'perplexity', not '{self.metric}'")
            self.metric = "perplexity"
        return self


class JobCreate(BaseModel):
    """Body of POST /v1/jobs."""

    model_config = ConfigDict(extra="forbid")

    model_id: uuid.UUID
    steps: list[StepCreate] = Field(..., min_length=1, max_length=MAX_STEPS)
    evaluation: EvaluationCreate = Field(default_factory=EvaluationCreate)
    callback_url: CallbackUrl | None = Field(
        None, description="http(s) URL that receives the job document, signed, when the job ends"
    )


class StepRead(BaseModel):
    """A step as clients see it."""

    model_config = ConfigDict(from_attributes=True)

    index: int
    technique: str
    params: dict[str, Any]
    status: str
    artifact_id: uuid.UUID | None
    metrics: dict[str, Any] | None
    warnings: list[str] | None
    error: dict[str, Any] | None
    started_at: datetime | None
    finished_at: datetime | None


class JobRead(BaseModel):
    """A job as clients see it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    model_id: uuid.UUID
    status: str
    stage: str
    progress: float
    steps: list[StepRead]
    artifact_id: uuid.UUID | None
    evaluation: dict[str, Any]
    comparison: dict[str, Any] | None
    error: dict[str, Any] | None
    attempts: int
    callback_url: str | None = None
    webhook_deliveries: list[WebhookDelivery] = Field(default_factory=list)
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobLogLineRead(BaseModel):
    """One structured log line of a job, as clients see it."""

    seq: int = Field(description="Position in the job's log, from 0; lines of a retried attempt follow")
    time: datetime
    level: Literal["debug", "info", "warning", "error"]
    step: int | None = Field(description="The step's index (0-based), or null for the job itself")
    message: str
    fields: dict[str, Any] = Field(description="Structured values of the line (durations, sizes, ...)")
