"""Worker fixtures on top of the session's trained digits models (tests/fixtures/files.py)."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from engine.contract import StepContext
from engine.ingest.summary import signature
from engine.techniques.quantize import dynamic as quantize_dynamic
from service.catalog.quantize import DynamicQuantParams


@pytest.fixture(scope="session")
def zoo(files_dir: Path) -> Path:
    """Folder holding every exported model and dataset of the session (tests/fixtures/files.py)."""
    return files_dir


@pytest.fixture(scope="session")
def mlp_int8(zoo: Path, mlp_onnx: Path) -> Path:
    """The MLP after quantize.dynamic with default parameters."""
    work = zoo / "quantize-work"
    work.mkdir()
    output = zoo / "mlp-int8.onnx"
    quantize_dynamic.run(mlp_onnx, output, DynamicQuantParams(), StepContext(workdir=work))
    return output


@pytest.fixture(scope="session")
def mlp_signature(mlp_onnx: Path) -> dict[str, list[dict[str, object]]]:
    """The MLP's signature as ingest records it."""
    return signature(onnx.load(str(mlp_onnx)))
