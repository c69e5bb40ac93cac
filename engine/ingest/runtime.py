"""The canonical model must load in onnxruntime, which every later step runs it with."""

from __future__ import annotations

import logging
from pathlib import Path

from engine.contract import TechniqueError
from service.failures import InvalidModel

log = logging.getLogger("modelpress.ingest")


def check_runtime_loads(model_path: Path) -> None:
    """Raise `invalid-model` when onnxruntime refuses the model (an opset or IR version it lacks...).

    onnxruntime's own text names files and source paths of this machine: it goes to the worker log,
    and the user gets a message written here.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises several unrelated exception types
        log.warning("onnxruntime refused the canonical model: %s", error)
        raise TechniqueError(
            InvalidModel,
            f"onnxruntime {ort.__version__} cannot load the model: an opset, IR version or operator it"
            " does not support, or an inconsistent graph; re-export the model with an older opset",
        ) from None
