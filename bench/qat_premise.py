"""Does per-tensor static int8 lose >= 2 points on a MobileNet-style CNN trained here? Writes QAT_PREMISE.md.

Issue 16's QAT goal starts from such a model (anchor: MobileNetV2 on ImageNet, per-tensor PTQ 71.9 ->
56.7). The cause there is depthwise weights whose per-channel ranges, once batch norm is folded in,
differ by orders of magnitude (a channel fed by a nearly dead input gets a huge folded scale), so one
scale per tensor leaves the other channels a few levels. This bench trains the MobileNet-style CNNs it
can on the image data that ships in a package (scikit-learn's digits, as bench/qat.py) under several
recipes and reports, for each: float top-1, per-tensor and per-channel static int8 top-1, and the
largest depthwise channel range over the median one (after folding, as onnxruntime quantizes it).

    nice -n 10 python -m bench.qat_premise
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from bench import qat_models as base
from bench.machine import machine
from engine.techniques.quantize import static
from service.catalog.quantize_static import StaticQuantParams

RESULTS = Path(__file__).with_name("QAT_PREMISE.md")
SEEDS = (0, 1)
GOAL_POINTS = 2.0


@dataclass(frozen=True)
class Recipe:
    """One way of training the float model."""

    architecture: str  # "v1": bench/qat.py's separable blocks; "v2": inverted residuals, linear bottleneck
    activation: str  # "relu6" or "relu" (v2 only)
    optimizer: str  # "adam" or "sgd" (momentum 0.9, Nesterov)
    learning_rate: float
    weight_decay: float
    epochs: int

    def label(self) -> str:
        return (
            f"{self.architecture}, {self.activation}, {self.optimizer} lr {self.learning_rate:g},"
            f" wd {self.weight_decay:g}, {self.epochs} epochs"
        )


RECIPES = (
    Recipe("v1", "relu6", "adam", 3e-3, 0.0, 30),  # bench/qat.py's own
    Recipe("v1", "relu6", "adam", 1e-2, 0.0, 30),
    Recipe("v2", "relu6", "adam", 3e-3, 0.0, 30),
    Recipe("v2", "relu6", "sgd", 0.1, 4e-5, 60),  # MobileNetV2's ImageNet recipe, scaled down
    Recipe("v1", "relu6", "sgd", 0.2, 5e-4, 40),
    Recipe("v2", "relu", "sgd", 0.2, 5e-4, 40),  # plain ReLU and strong decay: the most dead channels
)


def activation(kind: str) -> nn.Module:
    return nn.ReLU6() if kind == "relu6" else nn.ReLU()


def inverted(inputs: int, outputs: int, stride: int, kind: str, expand: int = 6) -> nn.Sequential:
    """MobileNetV2's block: 1x1 expansion, depthwise 3x3, 1x1 projection without activation."""
    hidden = inputs * expand
    return nn.Sequential(
        nn.Conv2d(inputs, hidden, 1, bias=False), nn.BatchNorm2d(hidden), activation(kind),
        nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
        activation(kind), nn.Conv2d(hidden, outputs, 1, bias=False), nn.BatchNorm2d(outputs),
    )  # fmt: skip


class Residual(nn.Module):
    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def network(recipe: Recipe) -> nn.Module:
    """The recipe's CNN: bench/qat.py's MobileNet-style net, or a small MobileNetV2."""
    if recipe.architecture == "v1":
        return base.mobilenet()  # ReLU6 throughout, as bench/qat.py trains it
    kind = recipe.activation
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), activation(kind),
        Residual(inverted(16, 16, 1, kind, expand=1)), inverted(16, 24, 2, kind),
        Residual(inverted(24, 24, 1, kind)), inverted(24, 32, 2, kind), Residual(inverted(32, 32, 1, kind)),
        inverted(32, 64, 1, kind),
        nn.Conv2d(64, 256, 1, bias=False), nn.BatchNorm2d(256), activation(kind),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, 10),
    )  # fmt: skip


def train(recipe: Recipe, x: np.ndarray, y: np.ndarray, seed: int) -> nn.Module:
    """The float model under the recipe, cosine schedule, batches of 64."""
    torch.manual_seed(seed)
    model = network(recipe)
    if recipe.optimizer == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.Adam(
            model.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay
        )
    else:
        optimizer = torch.optim.SGD(
            model.parameters(), lr=recipe.learning_rate, momentum=0.9, nesterov=True,
            weight_decay=recipe.weight_decay,
        )  # fmt: skip
    return base.fit(model, optimizer, x, y, recipe.epochs)


def depthwise_spread(path: Path) -> float:
    """The largest ratio of a depthwise layer's widest channel range to its median one (folded weights).

    Depthwise: a Conv whose group count is its output channels (the one-channel stem is not one).
    """
    graph = onnx.load(str(path)).graph
    weights = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    spreads = []
    for node in graph.node:
        groups = next((attribute.i for attribute in node.attribute if attribute.name == "group"), 1)
        kernel = weights.get(node.input[1]) if node.op_type == "Conv" and len(node.input) > 1 else None
        if kernel is not None and groups > 1 and groups == kernel.shape[0]:
            ranges = np.abs(kernel).reshape(kernel.shape[0], -1).max(axis=1)
            spreads.append(float(ranges.max() / max(np.median(ranges), 1e-12)))
    return max(spreads) if spreads else 0.0


def main() -> None:
    torch.set_num_threads(1)
    started = time.monotonic()
    x, y, test_x, test_y = base.data()
    work = Path(tempfile.mkdtemp(prefix="bench-qat-premise-"))
    dataset = work / "train.npz"
    np.savez(dataset, x=x, labels=y)
    rows = []
    for number, recipe in enumerate(RECIPES):
        for seed in SEEDS:
            tag = f"r{number}-s{seed}"
            model = base.export(train(recipe, x, y, seed), work / f"{tag}.onnx")
            scores = {"float": base.top1(model, test_x, test_y)}
            for per_channel in (False, True):
                out = work / f"{tag}-{per_channel}.onnx"
                params = StaticQuantParams(dataset_id="train", per_channel=per_channel)
                static.run(model, out, params, base.step_context(work, f"{tag}-{per_channel}", dataset))
                scores["per channel" if per_channel else "per tensor"] = base.top1(out, test_x, test_y)
            rows.append((recipe, seed, scores, depthwise_spread(model)))
            print(recipe.label(), seed, scores, flush=True)
    write(rows, time.monotonic() - started)


def write(rows: list[tuple[Recipe, int, dict[str, float], float]], seconds: float) -> None:
    lines = [
        "# Searching for the QAT premise: where does per-tensor static int8 lose >= 2 points?",
        "",
        "Written by `nice -n 10 python -m bench.qat_premise` (bench/qat_premise.py). Data: scikit-learn's "
        f"digits upsampled to {base.SIZE}x{base.SIZE}, {base.TRAIN} images to train and calibrate (MinMax), "
        "the rest held out for top-1. `spread`: the largest depthwise layer's widest channel range over its "
        "median one, after batch norm is folded in (in MobileNetV2 trained on ImageNet the folded depthwise "
        "ranges of one layer differ by orders of magnitude: Nagel et al., Data-Free Quantization, 2019).",
        "",
        f"Machine: `{machine()}`",
        "",
        "| recipe | seed | float top-1 | per-tensor static | drop (points) | per-channel static | spread |",
        "|---|---|---|---|---|---|---|",
    ]
    worst = 0.0
    for recipe, seed, scores, spread in rows:
        drop = 100 * (scores["float"] - scores["per tensor"])
        worst = max(worst, drop)
        lines.append(
            f"| {recipe.label()} | {seed} | {100 * scores['float']:.2f} | {100 * scores['per tensor']:.2f} |"
            f" {drop:.2f} | {100 * scores['per channel']:.2f} | {spread:.1f} |"
        )
    found = worst >= GOAL_POINTS
    lines += [
        "",
        f"Largest per-tensor loss: {worst:.2f} points; the premise (>= {GOAL_POINTS:g} points) "
        + ("holds for at least one recipe." if found else "holds for none of these recipes.")
        + f" Bench wall time: {seconds:.0f} s.",
        "",
    ]
    RESULTS.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
