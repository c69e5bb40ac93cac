"""The contract every technique module follows.

A technique module exposes::

    def run(model_path: Path, output_path: Path, params: <its TechniqueParams>, ctx: StepContext)
        -> StepOutcome

It reads the ONNX model at `model_path`, writes the compressed ONNX model to `output_path`, and
returns the metrics and warnings it wants shown next to the step. It is a pure function of files
and parameters: no database, no Celery, heavy imports inside `run`. It runs inside the sandbox
child process. A failure the user can act on is raised as `TechniqueError`; anything else is
reported as an internal failure of the step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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

    def dataset(self, dataset_id: str) -> Path:
        """Local path of a dataset the step's parameters named."""
        try:
            return self.datasets[dataset_id]
        except KeyError:
            raise TechniqueError("dataset-missing", f"dataset {dataset_id} was not provided") from None


@dataclass
class StepOutcome:
    """What a technique reports besides its output file."""

    metrics: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class TechniqueError(Exception):
    """A failure of a step that the user can understand and act on."""

    def __init__(self, slug: str, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.slug = slug
        self.detail = detail
        self.extensions = extensions
