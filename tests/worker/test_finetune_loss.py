"""The fine-tuning objective with labels: cross-entropy mixed with distillation from the original."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from service.catalog.prune import FinetuneParams
from worker.bridge import OnnxModule, from_onnx
from worker.techniques.finetune import TEMPERATURE, finetune
from worker.techniques.finetune import _class_loss as class_loss


@pytest.fixture(scope="module")
def teacher(mlp_onnx: Path) -> OnnxModule:
    """The digits MLP, bridged."""
    return from_onnx(onnx.load(str(mlp_onnx)))


def test_no_distillation_is_plain_cross_entropy(teacher: OnnxModule) -> None:
    x, labels = torch.rand(8, 1, 8, 8), torch.arange(8)
    logits = torch.randn(8, 10)

    loss = class_loss(logits, labels, [x], teacher, 0.0)

    assert torch.equal(loss, nn.functional.cross_entropy(logits, labels))


def test_matching_the_teacher_leaves_only_the_label_term(teacher: OnnxModule) -> None:
    x, labels = torch.rand(8, 1, 8, 8), torch.arange(8)
    with torch.no_grad():
        logits = teacher(x)

    mixed = class_loss(logits, labels, [x], teacher, 0.25)
    only_teacher = class_loss(logits, labels, [x], teacher, 1.0)

    assert float(only_teacher) == pytest.approx(0.0, abs=1e-6)
    assert float(mixed) == pytest.approx(0.75 * float(nn.functional.cross_entropy(logits, labels)), rel=1e-5)


def test_the_soft_term_is_the_tempered_kl_divergence(teacher: OnnxModule) -> None:
    x, labels = torch.rand(8, 1, 8, 8), torch.arange(8)
    logits = torch.randn(8, 10)
    with torch.no_grad():
        target = torch.softmax(teacher(x) / TEMPERATURE, -1)
    student = torch.log_softmax(logits / TEMPERATURE, -1)
    expected = TEMPERATURE**2 * float((target * (target.log() - student)).sum(-1).mean())

    assert float(class_loss(logits, labels, [x], teacher, 1.0)) == pytest.approx(expected, rel=1e-5)


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
