"""ONNX LSTM and GRU as nn.LSTM / nn.GRU, their weights re-laid in torch's gate order.

ONNX stacks LSTM gates as (input, output, forget, cell) and torch as (input, forget, cell, output);
ONNX stacks GRU gates as (update z, reset r, hidden h) and torch as (reset, update, new). torch's GRU
applies the reset gate after the recurrent matrix product, which is ONNX's `linear_before_reset=1`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
import torch
from torch import Tensor, nn

from engine.bridge.registry import Call, op, validator

# Where torch's gate k sits in ONNX's stacking, per op.
GATE_ORDER = {"LSTM": (0, 2, 3, 1), "GRU": (1, 0, 2)}
DEFAULT_ACTIVATIONS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"]}
SEQUENCE_LENS, INITIAL_H, INITIAL_C, PEEPHOLES = 4, 5, 6, 7
RecurrentLayer = nn.LSTM | nn.GRU


def _directions(attrs: Mapping[str, Any]) -> int:
    return 2 if attrs.get("direction", "forward") == "bidirectional" else 1


@validator("LSTM", "GRU")
def _unsupported(attrs: Mapping[str, Any]) -> str | None:
    """The settings nn.LSTM / nn.GRU cannot express, named."""
    kind, inputs = attrs["_op"], attrs.get("_inputs", [])
    activations = [a.lower() for a in attrs.get("activations") or []]
    defaults = [a.lower() for a in DEFAULT_ACTIVATIONS[kind]]
    if activations and activations != defaults * _directions(attrs):
        return f"{kind} with activations {attrs['activations']}"
    if attrs.get("clip") is not None:
        return f"{kind} with cell clipping"
    if kind == "LSTM" and attrs.get("input_forget", 0):
        return "LSTM with coupled input and forget gates (input_forget)"
    if kind == "LSTM" and len(inputs) > PEEPHOLES and inputs[PEEPHOLES]:
        return "LSTM with peephole weights"
    if kind == "GRU" and not attrs.get("linear_before_reset", 0):
        return "GRU with linear_before_reset=0 (nn.GRU applies the reset gate after the recurrent product)"
    if len(inputs) > SEQUENCE_LENS and inputs[SEQUENCE_LENS]:
        return f"{kind} with per-sample sequence lengths (sequence_lens)"
    return None


def torch_weights(kind: str, w: Tensor, r: Tensor, b: Tensor | None) -> list[Tensor]:
    """ONNX W (dirs, gates*H, I), R (dirs, gates*H, H), B (dirs, 2*gates*H) as torch's flat weight list."""
    order, hidden = GATE_ORDER[kind], r.shape[-1]

    def relaid(matrix: Tensor) -> Tensor:
        gates = matrix.reshape(len(order), hidden, *matrix.shape[1:])
        return torch.cat([gates[k] for k in order])

    params: list[Tensor] = []
    for d in range(w.shape[0]):
        params += [relaid(w[d]), relaid(r[d])]
        if b is not None:
            params += [relaid(half) for half in b[d].chunk(2)]
    return params


def recurrent_layer(
    node: onnx.NodeProto, attrs: Mapping[str, Any], consts: Mapping[str, np.ndarray]
) -> RecurrentLayer | None:
    """LSTM / GRU with constant W, R (and B) as an nn.LSTM / nn.GRU holding the re-laid weights."""
    names = list(node.input) + [""] * 4
    w, r, b = (consts.get(name) if name else None for name in names[1:4])
    if w is None or r is None or w.ndim != 3 or (names[3] and b is None):
        return None
    kind, directions = node.op_type, _directions(attrs)
    cls = nn.LSTM if kind == "LSTM" else nn.GRU
    layer = cls(w.shape[-1], r.shape[-1], bias=b is not None, bidirectional=directions == 2)
    tensors = [torch.from_numpy(np.array(a, copy=True)) if a is not None else None for a in (w, r, b)]
    layer.to(tensors[0].dtype if tensors[0] is not None else torch.float32)
    relaid = torch_weights(kind, *tensors)  # type: ignore[arg-type]
    with torch.no_grad():
        for param, value in zip(layer.parameters(), relaid, strict=True):
            param.copy_(value)
    return layer


def _state(call: Call, index: int, layout: int) -> Tensor | None:
    """An initial state input as torch wants it, (directions, batch, hidden)."""
    if not call.has(index):
        return None
    state = call.x(index)
    return state.transpose(0, 1) if layout else state


def _run(call: Call, kind: str) -> Sequence[Tensor]:
    layout, reverse = call.attr("layout", 0), call.attr("direction", "forward") == "reverse"
    directions = _directions(call.attrs)
    x = call.x().transpose(0, 1) if layout else call.x()
    if reverse:
        x = x.flip(0)
    hidden = int(call.attr("hidden_size", 0) or call.x(2).shape[-1]) if call.layer is None else None
    h0 = _state(call, INITIAL_H, layout)
    c0 = _state(call, INITIAL_C, layout) if kind == "LSTM" else None
    if isinstance(call.layer, nn.LSTM | nn.GRU):
        size = (directions, x.shape[1], call.layer.hidden_size)
        h0 = h0 if h0 is not None else x.new_zeros(size)
        if kind == "LSTM":
            y, (h, c) = call.layer(x, (h0, c0 if c0 is not None else x.new_zeros(size)))
        else:
            y, h = call.layer(x, h0)
            c = None
    else:
        # Weights computed in the graph: the same kernels, fed the re-laid weights directly.
        assert hidden is not None
        size = (directions, x.shape[1], hidden)
        h0 = h0 if h0 is not None else x.new_zeros(size)
        bias = call.x(3) if call.has(3) else None
        params = torch_weights(kind, call.x(1), call.x(2), bias)
        two = directions == 2
        if kind == "LSTM":
            state = [h0, c0 if c0 is not None else x.new_zeros(size)]
            y, h, c = torch.lstm(x, state, params, bias is not None, 1, 0.0, False, two, False)
        else:
            y, h = torch.gru(x, h0, params, bias is not None, 1, 0.0, False, two, False)
            c = None
    if reverse:
        y = y.flip(0)
    # torch: (steps, batch, dirs*hidden); ONNX: (steps, dirs, batch, hidden), or batch first with layout 1.
    y = y.reshape(y.shape[0], y.shape[1], directions, -1)
    y = y.transpose(0, 1) if layout else y.permute(0, 2, 1, 3)
    states = [h] if c is None else [h, c]
    return [y, *(s.transpose(0, 1) if layout else s for s in states)]


@op("LSTM")
def lstm(call: Call) -> Sequence[Tensor]:
    """LSTM: all steps' hidden states, the last hidden state and the last cell state."""
    return _run(call, "LSTM")


@op("GRU")
def gru(call: Call) -> Sequence[Tensor]:
    """GRU: all steps' hidden states and the last hidden state."""
    return _run(call, "GRU")
