"""LSTM and GRU through the bridge: nn.LSTM / nn.GRU layers that reproduce onnxruntime (1e-5) and train."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx.reference import ReferenceEvaluator
from torch import nn

from engine.bridge import from_onnx, to_onnx
from engine.contract import TechniqueError
from tests.worker.bridge_models import graph, matches_onnxruntime, node, rand

STEPS, BATCH, FEATURES, HIDDEN = 5, 3, 4, 6


def _weights(kind: str, directions: int = 1, bias: bool = True) -> dict[str, np.ndarray]:
    gates = 4 if kind == "LSTM" else 3
    weights = {
        "w": rand(directions, gates * HIDDEN, FEATURES),
        "r": rand(directions, gates * HIDDEN, HIDDEN) * 0.5,
    }
    if bias:
        weights["b"] = rand(directions, 2 * gates * HIDDEN)
    return weights


Case = tuple[onnx.ModelProto, dict[str, np.ndarray]]


def _case(kind: str, directions: int = 1, layout: int = 0, state: bool = False, **attrs: Any) -> Case:
    steps_first = layout == 0
    x = rand(STEPS, BATCH, FEATURES) if steps_first else rand(BATCH, STEPS, FEATURES)
    feeds = {"x": x}
    inputs = ["x", "w", "r", "b"]
    if state:
        shape = (directions, BATCH, HIDDEN) if steps_first else (BATCH, directions, HIDDEN)
        feeds["h0"] = rand(*shape)
        inputs += ["", "h0"]
        if kind == "LSTM":
            feeds["c0"] = rand(*shape)
            inputs.append("c0")
    outputs = ("y", "h", "c") if kind == "LSTM" else ("y", "h")
    if kind == "GRU":
        attrs.setdefault("linear_before_reset", 1)
    recurrent = node(kind, inputs, list(outputs), hidden_size=HIDDEN, layout=layout, **attrs)
    return graph([recurrent], feeds, _weights(kind, directions), outputs=outputs)


CASES = {
    "lstm": _case("LSTM"),
    "lstm-bidirectional": _case("LSTM", 2, direction="bidirectional"),
    "lstm-reverse": _case("LSTM", direction="reverse"),
    "lstm-bidirectional-with-state": _case("LSTM", 2, state=True, direction="bidirectional"),
    "gru": _case("GRU"),
    "gru-bidirectional": _case("GRU", 2, direction="bidirectional"),
    "gru-reverse-with-state": _case("GRU", state=True, direction="reverse"),
    "lstm-weights-computed-in-graph": graph(
        [
            node("Identity", ["wi"], ["w"]),
            node("LSTM", ["x", "w", "r"], ["y", "h"], hidden_size=HIDDEN),
        ],
        {"x": rand(STEPS, BATCH, FEATURES), "wi": rand(1, 4 * HIDDEN, FEATURES)},
        {"r": rand(1, 4 * HIDDEN, HIDDEN)},
        outputs=("y", "h"),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_recurrent_ops_match_onnxruntime(name: str, tmp_path: Path) -> None:
    matches_onnxruntime(*CASES[name], tmp_path)


BATCH_FIRST = {
    "lstm-with-state": _case("LSTM", layout=1, state=True),
    "gru-bidirectional": _case("GRU", 2, layout=1, direction="bidirectional"),
}


@pytest.mark.parametrize("name", list(BATCH_FIRST))
def test_batch_first_layout_matches_the_onnx_reference(name: str, tmp_path: Path) -> None:
    """onnxruntime refuses layout=1, so ONNX's reference runs the original; the export runs anywhere."""
    model, feeds = BATCH_FIRST[name]
    expected = ReferenceEvaluator(model).run(None, feeds)
    module = from_onnx(model)
    with torch.no_grad():
        bridged = module(*[torch.from_numpy(f) for f in feeds.values()])
    exported = ort.InferenceSession(str(to_onnx(module, tmp_path / "op.onnx"))).run(None, feeds)
    for want, got, again in zip(expected, bridged, exported, strict=True):
        np.testing.assert_allclose(got.numpy(), want, atol=1e-5, rtol=1e-6)
        np.testing.assert_allclose(again, want, atol=1e-5, rtol=1e-6)


def test_constant_weights_become_torch_layers() -> None:
    lstm = from_onnx(CASES["lstm-bidirectional"][0])
    gru = from_onnx(CASES["gru"][0])
    assert [type(layer) for layer in lstm.layers.values()] == [nn.LSTM]
    assert [type(layer) for layer in gru.layers.values()] == [nn.GRU]
    assert next(iter(lstm.layers.values())).bidirectional


class SequenceClassifier(nn.Module):
    """An embedding, a two-layer LSTM or GRU and a linear head, as torch writes them."""

    def __init__(self, kind: type[nn.LSTM] | type[nn.GRU]) -> None:
        super().__init__()
        self.embed = nn.Linear(8, 16)
        self.recurrent = kind(16, 12, num_layers=2, batch_first=True, bidirectional=True)
        self.head = nn.Linear(24, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.recurrent(torch.tanh(self.embed(x)))
        return self.head(out[:, -1])


@pytest.mark.parametrize("kind", [nn.LSTM, nn.GRU])
def test_torch_exported_recurrent_models_round_trip_and_train(
    kind: type[nn.LSTM] | type[nn.GRU], tmp_path: Path
) -> None:
    """torch's own LSTM / GRU export (gates re-laid by the exporter) comes back as layers that learn."""
    torch.manual_seed(0)
    source = tmp_path / "model.onnx"
    torch.onnx.export(
        SequenceClassifier(kind).eval(),
        (torch.zeros(2, 8, 8),),
        str(source),
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    model = onnx.load(str(source))
    assert kind.__name__ in {n.op_type for n in model.graph.node}
    matches_onnxruntime(model, {"x": rand(4, 8, 8)}, tmp_path)

    module = from_onnx(model).train()
    recurrent = [layer for layer in module.layers.values() if isinstance(layer, kind)]
    assert len(recurrent) == 2  # one ONNX node per stacked layer
    before = [p.detach().clone() for p in recurrent[0].parameters()]
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    loss = nn.functional.cross_entropy(module(torch.randn(4, 8, 8)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    optimizer.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, recurrent[0].parameters(), strict=True))


@pytest.mark.parametrize(
    ("attrs", "named"),
    [
        ({"clip": 1.0}, "LSTM with cell clipping"),
        ({"input_forget": 1}, "input_forget"),
        ({"activations": ["Relu", "Tanh", "Tanh"]}, "LSTM with activations"),
    ],
)
def test_unsupported_lstm_settings_are_named(attrs: dict[str, Any], named: str) -> None:
    model, _ = _case("LSTM", **attrs)
    with pytest.raises(TechniqueError) as caught:
        from_onnx(model)
    assert "LSTM" in caught.value.detail and named in caught.value.detail


def test_gru_resetting_before_the_product_is_named() -> None:
    model, _ = _case("GRU", linear_before_reset=0)
    with pytest.raises(TechniqueError) as caught:
        from_onnx(model)
    assert "GRU with linear_before_reset=0" in caught.value.detail


def test_sequence_lengths_and_peepholes_are_named() -> None:
    lens = graph(
        [node("LSTM", ["x", "w", "r", "", "lens"], ["y"], hidden_size=HIDDEN)],
        {"x": rand(STEPS, BATCH, FEATURES), "lens": np.array([5, 4, 3], np.int32)},
        _weights("LSTM", bias=False),
    )[0]
    peep = graph(
        [node("LSTM", ["x", "w", "r", "b", "", "", "", "p"], ["y"], hidden_size=HIDDEN)],
        {"x": rand(STEPS, BATCH, FEATURES)},
        {**_weights("LSTM"), "p": rand(1, 3 * HIDDEN)},
    )[0]
    for model, named in ((lens, "sequence_lens"), (peep, "peephole")):
        with pytest.raises(TechniqueError) as caught:
            from_onnx(model)
        assert named in caught.value.detail
