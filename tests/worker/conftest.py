"""Worker fixtures on top of the session's trained digits models (tests/fixtures/files.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from engine.contract import StepContext
from engine.ingest.summary import signature
from engine.techniques.quantize import dynamic as quantize_dynamic
from service.catalog.quantize import DynamicQuantParams
from tests import model_zoo


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


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread for training tests: on a busy two-core machine spinning threads slow it tenfold."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def train_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The labelled digits training split."""
    images, labels = model_zoo.digits("train")
    path = tmp_path_factory.mktemp("digits-train") / "train.npz"
    np.savez(path, x=images, labels=labels)
    return path
