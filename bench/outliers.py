"""A reference encoder with outlier channels: the trained encoder, reparametrized, same float function.

Trained BERT-class transformers carry a few LayerNorm output channels one to two orders of magnitude
wider than the rest, driven by the LayerNorm's scale and bias (Kovaleva et al. 2021; Bondarenko et al.
2021). An encoder trained for a minute on digits does not grow them, so the harness reproduces that
structure exactly: in every LayerNorm a few channels' scale and bias are multiplied by FACTOR and the
rows of the weights those channels feed are divided by FACTOR. The float model's outputs are the same
(up to rounding); only the ranges int8 has to represent change.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from bench.models import DATASETS, SEED, BuiltModel, Reference, RowEncoder
from engine.techniques.quantize.int8.smoothing_paths import GraphIndex, channel_path

FACTOR = 100.0
CHANNELS = 4


def with_outliers(base: BuiltModel, reference: Reference, workdir: Path) -> BuiltModel:
    """Copy the trained model with outlier channels in every LayerNorm that feeds only weights."""
    workdir.mkdir(parents=True, exist_ok=True)
    model = onnx.load(str(base.onnx_path))
    index = GraphIndex(model)
    rng = np.random.default_rng(SEED)
    changed = 0
    for node in model.graph.node:
        found = channel_path(index, node.output[0]) if node.op_type == "LayerNormalization" else None
        if found is None:
            continue
        size = numpy_helper.to_array(index.initializers[node.input[1]]).size
        channels = rng.choice(size, CHANNELS, replace=False)
        for name in (name for name in node.input[1:3] if name):
            _scale(index.initializers[name], 0, channels, FACTOR)
        for use in found.uses:
            _scale(index.initializers[use.weight], use.axis, channels, 1.0 / FACTOR)
        changed += 1
    if not changed:
        raise RuntimeError(f"{base.onnx_path} has no LayerNorm feeding only weights")
    path = workdir / f"{reference.name}.onnx"
    onnx.save(model, str(path))
    copies = [workdir / f"{reference.name}-{part}.npz" for part in DATASETS]
    for source, target in zip(
        (base.test_npz, base.calibration_npz, base.validation_npz), copies, strict=True
    ):
        shutil.copyfile(source, target)
    test, calibration, validation = copies
    return replace(
        base, reference=reference, onnx_path=path, test_npz=test, calibration_npz=calibration,
        validation_npz=validation,
    )  # fmt: skip


def _scale(tensor: onnx.TensorProto, axis: int, channels: np.ndarray, factor: float) -> None:
    values = np.moveaxis(numpy_helper.to_array(tensor).copy(), axis, 0)
    values[channels] *= factor
    values = np.moveaxis(values, 0, axis)
    tensor.CopyFrom(numpy_helper.from_array(values, tensor.name))


@dataclass(frozen=True)
class Variant:
    """A reference model derived from a trained one rather than trained itself."""

    reference: Reference
    base: str


OUTLIERS = Variant(
    Reference(
        "attention-outliers",
        f"the trained encoder reparametrized with {CHANNELS} outlier channels per LayerNorm, {FACTOR:g}x the"
        " others (same float function)",
        RowEncoder,
        16,
        0,
    ),
    "attention",
)
