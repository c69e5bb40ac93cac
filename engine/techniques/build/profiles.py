"""Optimization profiles for an engine: (min, opt, max) shapes per input from the ONNX signature.

Pure ONNX and Python, no TensorRT: the CPU tests check the very shapes a GPU build would be given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.contract import TechniqueError
from service.failures import UnboundedDimension


@dataclass(frozen=True)
class Profile:
    """One input's shape range, as `IOptimizationProfile.set_shape(name, min, opt, max)` takes it."""

    name: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def describe(self) -> dict[str, object]:
        """The profile as the engine's metadata records it."""
        return {"input": self.name, "min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


def input_dims(model_path: Path) -> list[tuple[str, list[int | None]]]:
    """Each graph input (initializers excluded) with its dims; None for a dynamic one."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    constants = {init.name for init in model.graph.initializer}
    found: list[tuple[str, list[int | None]]] = []
    for value in model.graph.input:
        if value.name in constants:
            continue
        dims = value.type.tensor_type.shape.dim
        found.append(
            (value.name, [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims])
        )
    return found


def profiles_for(inputs: list[tuple[str, list[int | None]]], batch_sizes: list[int]) -> list[Profile]:
    """The batch axis spans the job's batch sizes (opt at the largest); any other dynamic axis is refused."""
    low, high = min(batch_sizes), max(batch_sizes)
    profiles = []
    for name, dims in inputs:
        lows, highs = [], []
        for axis, dim in enumerate(dims):
            if dim is not None:
                lows.append(dim)
                highs.append(dim)
            elif axis == 0:
                lows.append(low)
                highs.append(high)
            else:
                raise TechniqueError(
                    UnboundedDimension,
                    f"input '{name}' axis {axis} is dynamic; an engine needs it bounded (export the model "
                    "with a fixed size there)",
                    input=name,
                    axis=axis,
                )
        profiles.append(Profile(name, tuple(lows), tuple(highs), tuple(highs)))
    return profiles
