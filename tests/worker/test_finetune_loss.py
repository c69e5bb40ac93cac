"""The fine-tuning objective with labels: cross-entropy mixed with distillation from the original."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from engine.bridge import OnnxModule, from_onnx
from engine.techniques.train.finetune import finetune
from engine.techniques.train.loss import class_loss
from service.catalog.prune import FinetuneParams
from tests import model_zoo

TEMPERATURE = 4.0


@pytest.fixture(scope="module")
def teacher(mlp_onnx: Path) -> OnnxModule:
    """The digits MLP, bridged."""
    return from_onnx(onnx.load(str(mlp_onnx)))


def test_no_distillation_is_plain_cross_entropy(teacher: OnnxModule) -> None:
    x, labels = torch.rand(8, 1, 8, 8), torch.arange(8)
    logits = torch.randn(8, 10)

    loss = class_loss(logits, labels, [x], teacher, 0.0, TEMPERATURE)

    assert torch.equal(loss, nn.functional.cross_entropy(logits, labels))


def test_matching_the_teacher_leaves_only_the_label_term(teacher: OnnxModule) -> None:
    x, labels = torch.rand(8, 1, 8, 8), torch.arange(8)
    with torch.no_grad():
        logits = teacher(x)

    mixed = class_loss(logits, labels, [x], teacher, 0.25, TEMPERATURE)
    only_teacher = class_loss(logits, labels, [x], teacher, 1.0, TEMPERATURE)

    assert float(only_teacher) == pytest.approx(0.0, abs=1e-6)
    assert float(mixed) == pytest.approx(0.75 * float(nn.functional.cross_entropy(logits, labels)), rel=1e-5)


def test_the_soft_term_is_the_tempered_kl_divergence(teacher: OnnxModule) -> None:
    x, labels = torch.rand(8, 1, 8, 8), torch.arange(8)
    logits = torch.randn(8, 10)
    with torch.no_grad():
        target = torch.softmax(teacher(x) / TEMPERATURE, -1)
    student = torch.log_softmax(logits / TEMPERATURE, -1)
    expected = TEMPERATURE**2 * float((target * (target.log() - student)).sum(-1).mean())

    assert float(class_loss(logits, labels, [x], teacher, 1.0, TEMPERATURE)) == pytest.approx(
        expected, rel=1e-5
    )


def test_objective_names_what_was_trained(teacher: OnnxModule, tmp_path: Path) -> None:
    images = np.random.default_rng(0).random((40, 1, 8, 8), dtype=np.float32)
    np.savez(tmp_path / "train.npz", x=images, labels=np.arange(40) % 10)
    reports = {}
    for weight in (0.0, 0.5):
        student = copy.deepcopy(teacher)
        params = FinetuneParams(dataset_id="train", epochs=1, distillation=weight)
        reports[weight] = finetune(student, teacher, tmp_path / "train.npz", params, lambda *_: None)

    assert reports[0.0]["objective"] == "cross_entropy"
    assert reports[0.5]["objective"] == "cross_entropy+distillation"


class PixelClassifier(nn.Module):
    """Per-pixel scores over 11 classes (background and the ten digits), classes on dim 1."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 11, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_segmentation_scores_on_dim_1_train_against_per_pixel_labels(tmp_path: Path) -> None:
    """(N, C, H, W) scores with (N, H, W) labels: torch's own cross-entropy, and a loss that falls."""
    images, digits = model_zoo.digits("train")
    images, digits = images[:256], digits[:256]
    # Ink pixels are labelled with their digit, blank ones as background (class 10).
    labels = np.where(images[:, 0] > 0.3, digits[:, None, None], 10).astype(np.int64)
    np.savez(tmp_path / "pixels.npz", x=images, labels=labels)
    torch.manual_seed(0)
    teacher = from_onnx(
        onnx.load(str(model_zoo.export_onnx(PixelClassifier().eval(), tmp_path / "seg.onnx")))
    )

    logits = torch.randn(4, 11, 8, 8)
    target = torch.from_numpy(labels[:4])
    loss = class_loss(logits, target, [torch.zeros(4, 1, 8, 8)], teacher, 0.0, TEMPERATURE)
    assert float(loss) == pytest.approx(float(nn.functional.cross_entropy(logits, target)), rel=1e-6)

    student = copy.deepcopy(teacher)
    params = FinetuneParams(
        dataset_id="pixels", epochs=8, learning_rate=1e-2, distillation=0.0, validation_fraction=0.0
    )
    report = finetune(student, teacher, tmp_path / "pixels.npz", params, lambda *_: None)
    assert report["epochs"][-1]["loss"] < 0.8 * report["epochs"][0]["loss"]
