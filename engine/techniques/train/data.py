"""A training dataset for a bridged model: its inputs and labels from the .npz, and the held-out split."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.contract import TechniqueError
from engine.npz import load_arrays
from service.catalog.training import MIN_HELD_OUT, held_out_count, too_small_to_split
from service.errors import DatasetMismatch
from service.failures import DatasetTooSmall

if TYPE_CHECKING:
    import numpy as np
    import torch

    from engine.bridge import OnnxModule, TensorSpec


@dataclass(frozen=True)
class Samples:
    """The model's inputs (one tensor per graph input, samples along dim 0) and the labels, if any.

    A scalar input (silero-vad's sample rate) is one value that goes with every sample.
    """

    inputs: list[torch.Tensor]
    labels: torch.Tensor | None

    def __len__(self) -> int:
        return next((len(x) for x in self.inputs if x.dim()), 1)

    def to(self, device: torch.device) -> Samples:
        """The same samples on `device`."""
        return Samples(
            [x.to(device) for x in self.inputs], None if self.labels is None else self.labels.to(device)
        )

    def take(self, index: torch.Tensor) -> Samples:
        """The samples at `index`."""
        return Samples(
            [x[index] if x.dim() else x for x in self.inputs],
            None if self.labels is None else self.labels[index],
        )


def _check(name: str, array: np.ndarray, spec: TensorSpec, dtype: torch.dtype) -> None:
    """Same kind of numbers and, where the model fixes a dim, the same size (samples along dim 0)."""
    if (array.dtype.kind == "f") != dtype.is_floating_point:
        detail = f"array '{name}' is {array.dtype} but the model expects {dtype}"
        raise TechniqueError(DatasetMismatch, detail)
    if spec.shape is None:
        return
    fixed = [(i, d) for i, d in enumerate(spec.shape) if isinstance(d, int) and i > 0]
    if array.ndim != len(spec.shape) or any(array.shape[i] != d for i, d in fixed):
        detail = f"array '{name}' has shape {array.shape} but model input '{name}' has shape {spec.shape}"
        raise TechniqueError(DatasetMismatch, detail)


def load_dataset(path: Path, module: OnnxModule) -> Samples:
    """The model's inputs (by name, in the module's dtypes) and the labels, if the .npz has them."""
    import torch

    from engine.bridge.dtypes import torch_dtype

    arrays = load_arrays(path)
    missing = [spec.name for spec in module.inputs if spec.name not in arrays]
    if missing:
        detail = f"the dataset has no array named {', '.join(missing)} (it has {', '.join(arrays)})"
        raise TechniqueError(DatasetMismatch, detail)
    inputs = []
    for spec in module.inputs:
        array, dtype = arrays[spec.name], torch_dtype(spec.elem_type)
        _check(spec.name, array, spec, dtype)
        inputs.append(torch.from_numpy(array).to(dtype))
    labels = torch.from_numpy(arrays["labels"]).long() if "labels" in arrays else None
    counts = {len(x) for x in inputs if x.dim()} | ({len(labels)} if labels is not None else set())
    if len(counts) != 1 or not min(counts):
        raise TechniqueError(DatasetMismatch, "dataset arrays must be non-empty and share their first dim")
    return Samples(inputs, labels)


def split(samples: Samples, fraction: float, seed: int) -> tuple[Samples, Samples | None]:
    """A seeded random split into training and held-out samples (no held-out split for fraction 0)."""
    import torch

    if fraction == 0:
        return samples, None
    held_out = held_out_count(len(samples), fraction)
    if too_small_to_split(len(samples), fraction):
        detail = (
            f"the dataset's {len(samples)} samples are too few to hold out {fraction:g} of them for "
            f"validation (at least {MIN_HELD_OUT} on each side): upload more, or set validation_fraction to 0"
        )
        raise TechniqueError(DatasetTooSmall, detail, samples=len(samples))
    order = torch.randperm(len(samples), generator=torch.Generator().manual_seed(seed))
    return samples.take(order[held_out:]), samples.take(order[:held_out])
