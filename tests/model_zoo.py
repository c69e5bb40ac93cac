"""Small real models trained on scikit-learn's digits, built on demand for tests.

Training takes a second or two on a CPU; models are exported with the legacy exporter because it
is fast, and with a symbolic batch dimension so every batch size can be benchmarked.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn


def digits(split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """Digits images scaled to [0, 1] as (N, 1, 8, 8) float32, with int64 labels; 80/20 split."""
    images, labels = load_digits(return_X_y=True)
    images = (images / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    labels = labels.astype(np.int64)
    cut = int(len(images) * 0.8)
    if split == "train":
        return images[:cut], labels[:cut]
    return images[cut:], labels[cut:]


class DigitsMLP(nn.Module):
    """Two hidden layers over the flattened image."""

    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DigitsCNN(nn.Module):
    """Two conv blocks with batch norm, a residual add, then a linear head."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(width * 4, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        y = torch.relu(y + self.block(y))
        return self.head(y)


class DigitsRecurrent(nn.Module):
    """A digit's 8 rows as 8 time steps of 8 pixels through an LSTM or GRU; the last state classified."""

    def __init__(self, kind: str = "lstm", hidden: int = 64) -> None:
        super().__init__()
        self.recurrent = (nn.LSTM if kind == "lstm" else nn.GRU)(8, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps, _ = self.recurrent(x.squeeze(1))
        return self.head(steps[:, -1])


def train(model: nn.Module, epochs: int = 15, seed: int = 0) -> nn.Module:
    """Fit on the digits training split with Adam; returns the model in eval mode."""
    torch.manual_seed(seed)
    images, labels = digits("train")
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for start in range(0, len(x), 64):
            batch = order[start : start + 64]
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    return model.eval()


def trained(build: Callable[[], nn.Module], epochs: int = 15) -> nn.Module:
    """A model built from a fixed seed and trained on one thread: the same weights in every session."""
    torch.manual_seed(0)  # before the weights are drawn, whatever ran before
    model = build()
    # One thread: on a busy two-core machine torch's spinning worker threads slow training tenfold.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train(model, epochs=epochs)
    finally:
        torch.set_num_threads(threads)


def accuracy(model: nn.Module) -> float:
    """Top-1 accuracy of a torch model on the digits test split."""
    images, labels = digits("test")
    with torch.no_grad():
        predicted = model(torch.from_numpy(images)).argmax(1).numpy()
    return float((predicted == labels).mean())


def export_onnx(model: nn.Module, path: Path, input_name: str = "x", output_name: str = "logits") -> Path:
    """Write an ONNX file with a symbolic batch dimension."""
    torch.onnx.export(
        model,
        (torch.zeros(2, 1, 8, 8),),
        str(path),
        input_names=[input_name],
        output_names=[output_name],
        dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}},
        dynamo=False,
    )
    return path


def export_pt2(model: nn.Module, path: Path) -> Path:
    """Write a torch.export program with a dynamic batch dimension."""
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(model, (torch.zeros(2, 1, 8, 8),), dynamic_shapes={"x": {0: batch}})
    torch.export.save(program, str(path))
    return path


def export_torchscript(model: nn.Module, path: Path) -> Path:
    """Write a scripted TorchScript archive."""
    torch.jit.script(model).save(str(path))
    return path


def write_dataset(path: Path, input_name: str = "x", labels: bool = True, limit: int | None = None) -> Path:
    """Write the digits test split as an .npz named after the model's input."""
    images, targets = digits("test")
    arrays: dict[str, np.ndarray] = {input_name: images[:limit]}
    if labels:
        arrays["labels"] = targets[:limit]
    np.savez(path, **arrays)
    return path
