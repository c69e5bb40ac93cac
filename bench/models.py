"""Reference models the harness trains itself on scikit-learn's digits, and exports to ONNX."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

SEED = 0
TRAIN_FRACTION = 0.8
DATASETS = ("test", "calibration", "validation")
# The labelled training images quantize.auto scores its trials on (the test split stays unseen).
VALIDATION_SAMPLES = 360


def digits(split: str, size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Digits images in [0, 1] as (N, 1, size, size) float32 (bilinear upsampling), int64 labels."""
    images, labels = load_digits(return_X_y=True)
    tensor = torch.from_numpy((images / 16.0).astype(np.float32).reshape(-1, 1, 8, 8))
    if size != 8:
        tensor = nn.functional.interpolate(tensor, size=size, mode="bilinear", align_corners=False)
    cut = int(len(images) * TRAIN_FRACTION)
    chosen = slice(0, cut) if split == "train" else slice(cut, None)
    return tensor.numpy()[chosen], labels.astype(np.int64)[chosen]


class ConvNet(nn.Module):
    """VGG-style 3x3 convolutions on 16x16 digits, wide enough that convolution dominates run time."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.features = nn.Sequential(
            *block(1, width), *block(width, 2 * width), nn.MaxPool2d(2),
            *block(2 * width, 4 * width), *block(4 * width, 4 * width), nn.MaxPool2d(2),
            *block(4 * width, 8 * width), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8 * width, 10),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class MLP(nn.Module):
    """Three hidden layers over the flattened 8x8 image."""

    def __init__(self, hidden: int = 512) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 10),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class RowEncoder(nn.Module):
    """A pre-norm transformer encoder (GELU, FFN 4x) reading the 16 rows of a 16x16 image as 16 tokens."""

    def __init__(self, dim: int = 256, heads: int = 4, layers: int = 2, size: int = 16) -> None:
        super().__init__()
        self.embed = nn.Linear(size, dim)
        self.position = nn.Parameter(torch.zeros(1, size, dim))
        layer = nn.TransformerEncoderLayer(
            dim, heads, 4 * dim, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x.flatten(1, 2)) + self.position
        return self.head(self.norm(self.encoder(tokens)).mean(1))


@dataclass(frozen=True)
class Reference:
    """How to build and train one reference model."""

    name: str
    what: str
    factory: Callable[[], nn.Module]
    image_size: int
    epochs: int
    learning_rate: float = 3e-3


REFERENCES = (
    Reference("conv", "VGG-style CNN, 5 conv layers up to 512 channels, 16x16 input", ConvNet, 16, 3),
    Reference("mlp", "MLP 64-512-512-512-10", MLP, 8, 15),
    Reference(
        "attention",
        "pre-norm transformer encoder, 2 layers, d_model 256, 4 heads, FFN 1024 (GELU), the 16 rows of a"
        " 16x16 image as 16 tokens",
        RowEncoder,
        16,
        10,
        # A transformer this wide wants a smaller step than the CNN and the MLP.
        learning_rate=1e-3,
    ),
)


@dataclass(frozen=True)
class BuiltModel:
    """A trained reference model on disk with its evaluation and calibration datasets."""

    reference: Reference
    onnx_path: Path
    test_npz: Path
    calibration_npz: Path
    validation_npz: Path
    torch_accuracy: float
    train_seconds: float


def train(
    model: nn.Module, images: np.ndarray, labels: np.ndarray, epochs: int, learning_rate: float = 3e-3
) -> nn.Module:
    """AdamW with a one-cycle schedule, batch 32; returns the model in eval mode."""
    torch.manual_seed(SEED)
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    steps_per_epoch = -(-len(x) // 32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, learning_rate, total_steps=epochs * steps_per_epoch
    )
    return fit_in_batches(model, optimizer, x, y, epochs, 32, after_step=schedule.step)


def fit_in_batches(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    epochs: int,
    batch: int,
    *,
    after_step: Callable[[], object] | None = None,
    after_epoch: Callable[[], object] | None = None,
) -> nn.Module:
    """Cross-entropy over freshly shuffled batches each epoch; the model in eval mode.

    `after_step` and `after_epoch` advance a learning-rate schedule, whichever way it counts.
    """
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for start in range(0, len(x), batch):
            index = order[start : start + batch]
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[index]), y[index]).backward()
            optimizer.step()
            if after_step is not None:
                after_step()
        if after_epoch is not None:
            after_epoch()
    return model.eval()


def build(reference: Reference, workdir: Path, *, unseen_validation: bool = False) -> BuiltModel:
    """Train the model, export it with a symbolic batch axis, and write its datasets.

    With `unseen_validation` the model does not train on the validation images: a search that judges
    trained candidates (pruned and fine-tuned) on them would otherwise score everything on images the
    original already knew by heart, and a 100% baseline there hides every loss.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    train_x, train_y = digits("train", reference.image_size)
    fit = slice(0, -VALIDATION_SAMPLES) if unseen_validation else slice(None)
    fit_x, fit_y = train_x[fit], train_y[fit]
    test_x, test_y = digits("test", reference.image_size)
    torch.manual_seed(SEED)
    threads = torch.get_num_threads()
    # One thread: on a busy two-core machine torch's spinning workers slow training several-fold.
    torch.set_num_threads(1)
    started = time.perf_counter()
    try:
        model = train(reference.factory(), fit_x, fit_y, reference.epochs, reference.learning_rate)
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - started
    with torch.no_grad():
        accuracy = float((model(torch.from_numpy(test_x)).argmax(1).numpy() == test_y).mean())
    path = workdir / f"{reference.name}.onnx"
    torch.onnx.export(
        model, (torch.from_numpy(test_x[:2]),), str(path), input_names=["x"], output_names=["logits"],
        dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False,
    )  # fmt: skip
    test, calibration, validation = (workdir / f"{reference.name}-{part}.npz" for part in DATASETS)
    np.savez(test, x=test_x, labels=test_y)
    # Calibration and quantize.auto's search use training images only: the test split stays unseen.
    np.savez(calibration, x=train_x[:-VALIDATION_SAMPLES])
    np.savez(validation, x=train_x[-VALIDATION_SAMPLES:], labels=train_y[-VALIDATION_SAMPLES:])
    return BuiltModel(reference, path, test, calibration, validation, accuracy, seconds)
