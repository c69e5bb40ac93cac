"""The pruning benchmark's reference: the harness's CNN, trained here so its torch model is at hand."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bench.models import REFERENCES, SEED, digits, train

REFERENCE = next(reference for reference in REFERENCES if reference.name == "conv")


@dataclass(frozen=True)
class PruningReference:
    """The trained torch model, its ONNX export and the datasets every recipe shares."""

    what: str
    model: nn.Module
    onnx_path: Path
    test_npz: Path
    train_npz: Path
    example: torch.Tensor
    torch_accuracy: float
    train_seconds: float


def export(model: nn.Module, example: torch.Tensor, path: Path) -> Path:
    """ONNX with a symbolic batch axis, exported the way the quantization benchmark exports."""
    torch.onnx.export(
        model, (example,), str(path), input_names=["x"], output_names=["logits"],
        dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False,
    )  # fmt: skip
    return path


def one_thread() -> int:
    """Set torch to one thread and return the previous count.

    On a busy two-core machine torch's spinning worker threads slow training several-fold.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    return threads


def build_reference(workdir: Path) -> PruningReference:
    """Train the conv reference model on digits; write its ONNX file, test split and training split."""
    workdir.mkdir(parents=True, exist_ok=True)
    train_x, train_y = digits("train", REFERENCE.image_size)
    test_x, test_y = digits("test", REFERENCE.image_size)
    threads = one_thread()
    started = time.perf_counter()
    try:
        torch.manual_seed(SEED)  # the initial weights too, so every run trains the same model
        model = train(REFERENCE.factory(), train_x, train_y, REFERENCE.epochs)
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - started
    with torch.no_grad():
        accuracy = float((model(torch.from_numpy(test_x)).argmax(1).numpy() == test_y).mean())
    example = torch.from_numpy(test_x[:2])
    test, training = workdir / "test.npz", workdir / "train.npz"
    np.savez(test, x=test_x, labels=test_y)
    # Fine-tuning and calibration read the training split only; the test split stays unseen.
    np.savez(training, x=train_x, labels=train_y)
    return PruningReference(
        what=REFERENCE.what,
        model=model,
        onnx_path=export(model, example, workdir / "original.onnx"),
        test_npz=test,
        train_npz=training,
        example=example,
        torch_accuracy=accuracy,
        train_seconds=seconds,
    )
