"""The contract between the worker and what it runs in the sandbox: a technique, its context, its failures.

A technique module exposes `run` as `Technique` declares it. It reads the ONNX model at
`model_path`, writes the compressed ONNX model to `output_path`, and returns the metrics and
warnings it wants shown next to the step. It is a pure function of files and parameters: no
database, no Celery, heavy imports inside `run`. It runs inside the sandbox child process. A
failure the user can act on is raised as a `TechniqueError` carrying its `Problem` class; anything
else is reported as the step's internal failure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, Self, TypeVar

from service.catalog import TechniqueParams
from service.errors import Problem
from service.failures import DatasetMissing, ModelMissing

P_contra = TypeVar("P_contra", bound=TechniqueParams, contravariant=True)
P = TypeVar("P", bound=TechniqueParams)

# The key of the job's own model (as normalized at ingest) among a step's `models`.
JOB_MODEL = "job"


class TechniqueError(Exception):
    """A failure of a step, ingest or job, carrying the problem it is reported as."""

    def __init__(self, kind: type[Problem], detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.problem = kind(detail, **extensions)

    @classmethod
    def carrying(cls, problem: Problem) -> Self:
        """The error for a problem already built (its class, detail and extensions kept)."""
        return cls(type(problem), problem.detail, **problem.extensions)

    @property
    def slug(self) -> str:
        """The problem type's last path segment."""
        return self.problem.slug

    @property
    def detail(self) -> str:
        """What went wrong, for the user."""
        return self.problem.detail

    @property
    def extensions(self) -> dict[str, Any]:
        """The problem document's extra members."""
        return self.problem.extensions

    @property
    def document(self) -> dict[str, Any]:
        """The problem document stored in a failed job's or model's `error`."""
        return self.problem.to_document()


def _ignore_progress(fraction: float, message: str) -> None:
    """Default progress sink when nobody listens."""


@dataclass
class StepContext:
    """What a technique may use besides its model and parameters."""

    workdir: Path
    datasets: Mapping[str, Path] = field(default_factory=dict)
    signature: Mapping[str, Any] = field(default_factory=dict)
    threads: int = 1
    progress: Callable[[float, str], None] = _ignore_progress
    # Other models the step may read: uploaded ones by id, and the job's own model under JOB_MODEL.
    models: Mapping[str, Path] = field(default_factory=dict)

    def dataset(self, dataset_id: str) -> Path:
        """Local path of a dataset the step's parameters named."""
        try:
            return self.datasets[dataset_id]
        except KeyError:
            raise TechniqueError(DatasetMissing, f"dataset {dataset_id} was not provided") from None

    def model(self, key: str) -> Path:
        """Local path of a model the step's parameters named (or JOB_MODEL: the job's model)."""
        try:
            return self.models[key]
        except KeyError:
            raise TechniqueError(ModelMissing, f"model {key} was not provided to the step") from None


@dataclass
class StepOutcome:
    """What a technique reports besides its output file."""

    metrics: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class Technique(Protocol[P_contra]):
    """A technique module: `run` compresses one model with its catalog entry's params."""

    def run(self, model_path: Path, output_path: Path, params: P_contra, ctx: StepContext) -> StepOutcome:
        """Read the model, write the compressed one, report what was done."""
        ...


@dataclass(frozen=True)
class TechniqueBinding(Generic[P]):
    """A technique module next to the params model its catalog entry validates, checked by mypy."""

    module: Technique[P]
    params: type[P]
