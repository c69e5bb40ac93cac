"""The recovery benchmark's model: a small CNN trained with batch norms on digits, exported in eval
mode (so its norms are folded into the convolutions), and its torch twin with the norms folded."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bench.models import SEED, digits, train
from bench.pruning_setup import export, one_thread

IMAGE_SIZE, TRAIN_EPOCHS = 16, 8


class SmallCNN(nn.Module):
    """Five 3x3 conv blocks (16-32-64-64-128 channels, batch norm, ReLU), global pooling, a linear head."""

    def __init__(self) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.features = nn.Sequential(
            *block(1, 16), *block(16, 32), nn.MaxPool2d(2), *block(32, 64), *block(64, 64), nn.MaxPool2d(2),
            *block(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )  # fmt: skip
        self.head = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def folded(model: nn.Module) -> nn.Module:
    """A copy with every batch norm folded into the convolution before it (what the ONNX file holds)."""
    twin = copy.deepcopy(model).eval()
    layers = list(twin.features)
    for i, layer in enumerate(layers):
        if isinstance(layer, nn.BatchNorm2d):
            conv = layers[i - 1]
            assert isinstance(conv, nn.Conv2d)
            layers[i - 1] = torch.nn.utils.fusion.fuse_conv_bn_eval(conv, layer)
            layers[i] = nn.Identity()
    twin.features = nn.Sequential(*layers)
    return twin


@dataclass(frozen=True)
class RecoveryReference:
    """The trained model (with norms), its folded twin, the folded ONNX file and the shared data."""

    model: nn.Module
    folded: nn.Module
    onnx_path: Path
    train_npz: Path
    test: tuple[np.ndarray, np.ndarray]
    example: torch.Tensor
    accuracy: float
    train_seconds: float


def top1(model: nn.Module, test: tuple[np.ndarray, np.ndarray]) -> float:
    """Test-split accuracy of a torch model in eval mode."""
    with torch.no_grad():
        return float((model.eval()(torch.from_numpy(test[0])).argmax(1).numpy() == test[1]).mean())


def build(workdir: Path) -> RecoveryReference:
    """Train the CNN on the digits training split, export it folded, write the training split."""
    workdir.mkdir(parents=True, exist_ok=True)
    train_x, train_y = digits("train", IMAGE_SIZE)
    test = digits("test", IMAGE_SIZE)
    threads, started = one_thread(), time.perf_counter()
    try:
        torch.manual_seed(SEED)
        model = train(SmallCNN(), train_x, train_y, TRAIN_EPOCHS)
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - started
    example = torch.from_numpy(test[0][:2])
    np.savez(workdir / "train.npz", x=train_x, labels=train_y)
    path = export(model, example, workdir / "folded.onnx")
    twin = folded(model)
    assert abs(top1(twin, test) - top1(model, test)) < 1e-9, "folding changed the model"
    return RecoveryReference(
        model, twin, path, workdir / "train.npz", test, example, top1(model, test), seconds
    )
