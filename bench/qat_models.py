"""The QAT benches' CNN: digits upsampled to 16x16, a MobileNet-style network, its training and scoring.

Shared by bench/qat.py (quantize.qat against quantize.static) and bench/qat_premise.py (the search
for a training where per-tensor static int8 loses accuracy).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from sklearn.datasets import load_digits
from torch import nn

from bench.models import fit_in_batches
from engine.contract import StepContext

SIZE, TRAIN = 16, 1000
EPOCHS = 30  # the float model's training; QAT gets 10% of it, as the anchors report is enough


def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Digits as (N, 1, 16, 16) floats in [0, 1]: train split then test split, with labels."""
    images, labels = load_digits(return_X_y=True)
    small = torch.from_numpy((images / 16.0).astype(np.float32).reshape(-1, 1, 8, 8))
    large = nn.functional.interpolate(small, size=(SIZE, SIZE), mode="bilinear", align_corners=False).numpy()
    labels = labels.astype(np.int64)
    return large[:TRAIN], labels[:TRAIN], large[TRAIN:], labels[TRAIN:]


def separable(inputs: int, outputs: int, stride: int) -> nn.Sequential:
    """MobileNet's block: depthwise 3x3, batch norm, ReLU6, pointwise 1x1, batch norm, ReLU6."""
    return nn.Sequential(
        nn.Conv2d(inputs, inputs, 3, stride, 1, groups=inputs, bias=False),
        nn.BatchNorm2d(inputs),
        nn.ReLU6(),
        nn.Conv2d(inputs, outputs, 1, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU6(),
    )


def mobilenet() -> nn.Module:
    """A small MobileNet-style CNN: a 3x3 stem, four depthwise-separable blocks, pooling, a linear head."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, 1, 1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU6(),
        separable(16, 32, 2),
        separable(32, 32, 1),
        separable(32, 64, 2),
        separable(64, 64, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, 10),
    )


def train_float(x: np.ndarray, y: np.ndarray, seed: int) -> nn.Module:
    """The float model, trained with Adam and a cosine schedule."""
    torch.manual_seed(seed)
    model = mobilenet()
    return fit(model, torch.optim.Adam(model.parameters(), lr=3e-3), x, y, EPOCHS)


def fit(
    model: nn.Module, optimizer: torch.optim.Optimizer, x: np.ndarray, y: np.ndarray, epochs: int
) -> nn.Module:
    """Cross-entropy training in shuffled batches of 64 under a cosine schedule; the model in eval mode."""
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    images, labels = torch.from_numpy(x), torch.from_numpy(y)
    return fit_in_batches(model, optimizer, images, labels, epochs, 64, after_epoch=schedule.step)


def export(model: nn.Module, path: Path) -> Path:
    """ONNX with a symbolic batch."""
    torch.onnx.export(
        model,
        (torch.zeros(1, 1, SIZE, SIZE),),
        str(path),
        input_names=["x"],
        output_names=["logits"],
        dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
        dynamo=False,
    )
    return path


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def top1(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(session(path).run(None, {"x": x})[0].argmax(1) == y))


def step_context(work: Path, name: str, dataset: Path) -> StepContext:
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    return StepContext(workdir=folder, datasets={"train": dataset}, threads=1)
