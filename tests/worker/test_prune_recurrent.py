"""prune.structured on LSTM models: the LSTM keeps its channels (and trains with fine-tuning), the
layers around it shrink."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from engine.contract import StepContext
from engine.techniques.prune import structured as prune_structured
from service.catalog.prune import StructuredPruneParams
from tests import model_zoo
from tests.worker.test_prune_structured import top1
from tests.worker.test_prune_structured_graphs import channels, prune


class DigitsLSTMHidden(nn.Module):
    """Digits rows through an LSTM, then a hidden Linear layer (the prunable one) and the head."""

    def __init__(self) -> None:
        super().__init__()
        self.recurrent = nn.LSTM(8, 48, batch_first=True)
        self.hidden = nn.Linear(48, 64)
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps, _ = self.recurrent(x.squeeze(1))
        return self.head(torch.relu(self.hidden(steps[:, -1])))


def test_pruning_fine_tunes_through_the_lstm(tmp_path: Path) -> None:
    source = model_zoo.export_onnx(model_zoo.trained(DigitsLSTMHidden, epochs=40), tmp_path / "lstm.onnx")
    images, labels = model_zoo.digits("train")
    np.savez(tmp_path / "train.npz", x=images, labels=labels)
    finetune = {"dataset_id": "train", "epochs": 5, "learning_rate": 3e-3, "batch_size": 32}
    params = StructuredPruneParams(sparsity=0.5, finetune=finetune)  # type: ignore[arg-type]
    context = StepContext(workdir=tmp_path / "work", datasets={"train": tmp_path / "train.npz"})
    outcome = prune_structured.run(source, tmp_path / "pruned.onnx", params, context)

    pruned = onnx.load(str(tmp_path / "pruned.onnx"))
    (lstm,) = [node for node in pruned.graph.node if node.op_type == "LSTM"]
    matrices = [tuple(t.dims) for t in pruned.graph.initializer if len(t.dims) == 2]
    assert not any(64 in dims for dims in matrices) and any(32 in dims for dims in matrices), matrices
    # Fine-tuning trained the LSTM too: its input weights moved from the original's.
    weights = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(source)).graph.initializer}
    tuned = {t.name: numpy_helper.to_array(t) for t in pruned.graph.initializer}
    original_w = next(weights[n] for n in weights if weights[n].shape == tuned[lstm.input[1]].shape)
    assert not np.allclose(original_w, tuned[lstm.input[1]])
    report = outcome.metrics["finetune"]
    assert report["epochs"][-1]["loss"] < report["epochs"][0]["loss"]
    assert top1(tmp_path / "pruned.onnx") >= top1(source) - 0.03


class _RecurrentThenHead(torch.nn.Module):
    """Two stacked LSTM layers whose last state feeds an MLP head; the top layer's sequence output
    is never read."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = torch.nn.LSTM(8, 16, num_layers=2)
        self.head = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (state, _) = self.lstm(x)
        return self.head(state[-1])


def test_an_lstm_keeps_its_channels_and_the_head_after_it_is_pruned(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = tmp_path / "recurrent.onnx"
    torch.onnx.export(
        _RecurrentThenHead().eval(), (torch.randn(5, 2, 8),), str(source), input_names=["x"],
        output_names=["y"], dynamic_axes={"x": {1: "batch"}, "y": {0: "batch"}}, dynamo=False,
    )  # fmt: skip
    # Ingest's normalization drops outputs nobody reads: the top LSTM's sequence output loses its name.
    model = onnx.load(str(source))
    read = {name for node in model.graph.node for name in node.input} | {"y"}
    unread = [n for n in model.graph.node if n.op_type == "LSTM" and n.output[0] not in read]
    assert unread  # the form this test is about
    unread[0].output[0] = ""
    onnx.save(model, str(source))

    outcome = prune(source, tmp_path / "pruned.onnx", sparsity=0.5, round_to=1)

    pruned = channels(outcome)
    assert (32, 16) in pruned.values()  # the head's hidden layer; the LSTM's widths stay as they are
