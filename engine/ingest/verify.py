"""A converted model must compute what the torch model computes, at a batch size it was not traced at."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from engine.contract import TechniqueError
from engine.errortext import brief, summary
from service.failures import ConversionFailed

RTOL = 1e-3
ATOL = 1e-4
VERIFY_BATCH = 3


def verify_conversion(
    module: Callable[..., Any], onnx_path: Path, inputs: dict[str, np.ndarray]
) -> str | None:
    """Compare torch and onnxruntime outputs; raise `conversion-failed` on a mismatch.

    Returns a warning when torch itself cannot run these inputs (then nothing was compared).
    """
    import onnxruntime as ort
    import torch

    try:
        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        names = [meta.name for meta in session.get_inputs()]
        converted = session.run(None, {name: inputs[name] for name in names})
    except Exception as error:  # onnxruntime raises several unrelated exception types
        raise TechniqueError(
            ConversionFailed, f"onnxruntime cannot run the converted model: {brief(error)}"
        ) from None
    try:
        with torch.no_grad():
            expected = _flatten(module(*[torch.from_numpy(inputs[name]) for name in names]))
    except Exception as error:  # whatever the user's model raises
        return f"the conversion was not verified: the torch model rejects generated inputs ({summary(error)})"
    if len(expected) != len(converted):
        raise TechniqueError(
            ConversionFailed,
            f"the torch model has {len(expected)} outputs, the ONNX model {len(converted)}",
        )
    for index, (want, got) in enumerate(zip(expected, converted, strict=True)):
        got = np.asarray(got)
        if want.shape != got.shape or not np.allclose(got, want, rtol=RTOL, atol=ATOL):
            difference = float(np.max(np.abs(got - want))) if want.shape == got.shape else float("nan")
            raise TechniqueError(
                ConversionFailed,
                f"output {index} of the converted model differs from torch (shape {got.shape} vs"
                f" {want.shape}, max abs difference {difference:.3g})",
            )
    return None


def _flatten(outputs: Any) -> list[np.ndarray]:
    import torch

    if isinstance(outputs, torch.Tensor):
        return [outputs.detach().numpy()]
    if isinstance(outputs, dict):
        return [array for value in outputs.values() for array in _flatten(value)]
    if isinstance(outputs, list | tuple):
        return [array for value in outputs for array in _flatten(value)]
    return [np.asarray(outputs)]
