"""The shape of a catalog entry, shared by the API (validation) and the workers (dispatch)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

# Request lists are bounded (DESIGN.md §1): a model has at most a few thousand nodes worth naming.
MAX_NODE_NAMES = 4096
MAX_OP_TYPES = 256
NodeName = Annotated[str, Field(min_length=1, max_length=1024)]
OpTypeName = Annotated[str, Field(min_length=1, max_length=128)]
NodeNames = Annotated[list[NodeName], Field(max_length=MAX_NODE_NAMES)]
OpTypeNames = Annotated[list[OpTypeName], Field(max_length=MAX_OP_TYPES)]


class Queue(StrEnum):
    """Celery queues: a technique names the pool that can run it; deliveries have their own."""

    CPU = "cpu"
    GPU = "gpu"
    # Deliveries wait on other people's servers: their own queue keeps them off the compression workers.
    WEBHOOKS = "webhooks"


class TechniqueParams(BaseModel):
    """Base for every technique's parameters: unknown keys are an error, not ignored."""

    model_config = ConfigDict(extra="forbid")

    def labelled_datasets(self) -> list[tuple[str, str | None]]:
        """(dataset id, metric) for each dataset whose labels this step scores or trains on."""
        return []

    def held_out_splits(self) -> list[tuple[str, float]]:
        """(dataset id, fraction) for each dataset this step splits into training and held-out samples."""
        return []


@dataclass(frozen=True)
class TechniqueSpec:
    """One catalog entry; `implementation` is a worker module with a `run` function."""

    name: str
    summary: str
    queue: Queue
    params: type[TechniqueParams]
    implementation: str
    # What the step writes: an ONNX model the next step and the evaluation read, or a final format.
    output_suffix: str = ".onnx"

    @property
    def writes_onnx(self) -> bool:
        """Whether later steps and the job's evaluation can read this step's output."""
        return self.output_suffix == ".onnx"

    # A step that trains (fine-tuning, distillation, QAT) runs on the GPU pool whenever one is alive.
    trains: bool = False

    def describe(self) -> dict[str, Any]:
        """The entry as served by GET /v1/techniques."""
        return {
            "name": self.name,
            "summary": self.summary,
            "queue": self.queue.value,
            "trains": self.trains,
            "params_schema": self.params.model_json_schema(),
        }


def referenced_dataset_ids(params: dict[str, Any]) -> list[str]:
    """Ids of the datasets a step's parameters name (keys ending in dataset_id, nested too)."""
    found: list[str] = []
    for key, value in params.items():
        if key.endswith("dataset_id") and value:
            found.append(str(value))
        elif isinstance(value, dict):
            found.extend(referenced_dataset_ids(value))
    return found


def referenced_model_ids(params: dict[str, Any]) -> list[str]:
    """Ids of the uploaded models a step's parameters name (keys ending in model_id, nested too)."""
    found: list[str] = []
    for key, value in params.items():
        if key.endswith("model_id") and value:
            found.append(str(value))
        elif isinstance(value, dict):
            found.extend(referenced_model_ids(value))
    return found
