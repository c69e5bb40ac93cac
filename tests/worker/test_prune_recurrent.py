"""prune.structured around recurrent layers: their channels stay whole, the layers after them prune."""

from __future__ import annotations

from pathlib import Path

import onnx
import torch

from tests.worker.test_prune_structured_graphs import channels, prune


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
