"""Models and graphs that exercise the bridge: concatenation, grouped convs, attention, single ops."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from onnx import helper, numpy_helper
from torch import nn

from engine.bridge import from_onnx, to_onnx
from tests import model_zoo


class ConcatCNN(nn.Module):
    """Two branches (one depthwise) concatenated, a grouped conv, squeeze-excite, odd padding."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.left = nn.Sequential(nn.Conv2d(width, width, 1), nn.BatchNorm2d(width), nn.ReLU6())
        self.right = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, groups=width),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, width, 1),
        )
        self.fuse = nn.Sequential(nn.Conv2d(2 * width, 2 * width, 1), nn.BatchNorm2d(2 * width), nn.ReLU())
        self.grouped = nn.Sequential(
            nn.Conv2d(2 * width, 2 * width, 3, padding=1, groups=4), nn.BatchNorm2d(2 * width)
        )
        self.squeeze = nn.Sequential(
            nn.Conv2d(2 * width, 8, 1), nn.ReLU(), nn.Conv2d(8, 2 * width, 1), nn.Sigmoid()
        )
        self.head = nn.Linear(2 * width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        y = self.fuse(torch.cat([self.left(y), self.right(y)], 1))
        y = F.max_pool2d(torch.relu(self.grouped(y)), 2)
        y = y * self.squeeze(F.adaptive_avg_pool2d(y, 1))
        y = F.avg_pool2d(F.pad(y, (1, 0, 1, 0)), 2, stride=1)
        y = F.interpolate(y, scale_factor=2, mode="nearest")
        return self.head(torch.flatten(F.adaptive_avg_pool2d(y, 1), 1))


class TinyEncoder(nn.Module):
    """Rows of the image as 8 tokens through one pre-norm transformer block.

    `style` "fused": one QKV projection cut in three and a key mask over 2 heads. "bert": 4 heads
    with separate Q, K and V projections and views that keep whatever the leading dims are, as
    HuggingFace writes them. "bert-width": the same, but the head size is worked out from the
    projection's width at run time, so a shape read off a pruned tensor goes wrong.
    """

    def __init__(self, dim: int = 32, hidden: int = 64, style: str = "fused") -> None:
        super().__init__()
        self.style, self.heads = style, (2 if style == "fused" else 4)
        self.embed = nn.Linear(8, dim)
        self.position = nn.Parameter(torch.randn(1, 8, dim) * 0.02)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        if style == "fused":
            self.qkv = nn.Linear(dim, 3 * dim)
        else:
            self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.up, self.down = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        self.register_buffer("keep", (torch.arange(8) < 7).long())
        self.head = nn.Linear(dim, 10)

    def split_heads(self, t: torch.Tensor) -> torch.Tensor:
        """(batch, tokens, width) -> (batch, heads, tokens, head size)."""
        size = t.shape[-1] // self.heads if self.style == "bert-width" else 32 // self.heads
        return t.view(t.size()[:-1] + (self.heads, size)).transpose(1, 2)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """Multi-head self-attention (with a key mask when fused), written out op by op."""
        batch, tokens, dim = x.shape[0], x.shape[1], x.shape[2]
        if self.style == "fused":
            q, k, v = self.qkv(x).chunk(3, dim=-1)
            q, k, v = (
                t.reshape(batch, tokens, self.heads, dim // self.heads).transpose(1, 2) for t in (q, k, v)
            )
        else:
            q, k, v = (self.split_heads(t) for t in (self.q(x), self.k(x), self.v(x)))
        scores = q @ k.transpose(-2, -1) / (dim // self.heads) ** 0.5
        if self.style == "fused":
            mask = self.keep.expand(batch, self.heads, tokens, tokens) == 0
            scores = scores.masked_fill(mask, float("-inf"))
        context = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2)
        return self.proj(context.reshape(batch, tokens, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x.squeeze(1)) + self.position
        tokens = tokens + self.attention(self.norm1(tokens))
        tokens = tokens + self.down(F.gelu(self.up(self.norm2(tokens))))
        centred = tokens - tokens.mean(-1, keepdim=True)
        scaled = centred / torch.sqrt(centred.pow(2).mean(-1, keepdim=True) + 1e-5)
        return self.head(torch.tanh(scaled[:, 1:].float()).mean(1))


def export(model: nn.Module, path: Path, opset: int = 17, fold: bool = False) -> Path:
    """Write ONNX with a symbolic batch; unless folding, batch norm stays its own node."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on ops it cannot constant-fold
        torch.onnx.export(
            model.eval(),
            (torch.zeros(2, 1, 8, 8),),
            str(path),
            input_names=["pixels"],
            output_names=["scores"],
            dynamic_axes={"pixels": {0: "n"}, "scores": {0: "n"}},
            opset_version=opset,
            dynamo=False,
            training=torch.onnx.TrainingMode.EVAL if fold else torch.onnx.TrainingMode.PRESERVE,
            do_constant_folding=fold,
        )
    return path


@functools.cache
def trained(name: str) -> nn.Module:
    """One of the models above trained briefly on digits, once per test session."""
    builders = {"concat": ConcatCNN, "encoder": TinyEncoder}
    builders |= {style: functools.partial(TinyEncoder, style=style) for style in ("bert", "bert-width")}
    return model_zoo.trained(builders[name], epochs=2)


RNG = np.random.default_rng(0)
node = helper.make_node


def rand(*shape: int) -> np.ndarray:
    """Standard-normal float32 test data."""
    return RNG.standard_normal(shape).astype(np.float32)


def ints(*values: int) -> np.ndarray:
    """An int64 vector."""
    return np.array(values, dtype=np.int64)


def graph(
    nodes: list[Any],
    feeds: dict[str, np.ndarray],
    weights: dict[str, np.ndarray] | None = None,
    outputs: tuple[str, ...] = ("y",),
    opset: int = 17,
) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """A model around the given nodes (typed inputs, untyped outputs), and the inputs to feed it."""
    inputs = [
        helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
        for name, a in feeds.items()
    ]
    inits = [numpy_helper.from_array(a, name) for name, a in (weights or {}).items()]
    body = helper.make_graph(
        nodes, "g", inputs, [helper.make_empty_tensor_value_info(o) for o in outputs], inits
    )
    return helper.make_model(body, opset_imports=[helper.make_opsetid("", opset)], ir_version=9), feeds


def matches_onnxruntime(model: onnx.ModelProto, feeds: dict[str, np.ndarray], folder: Path) -> None:
    """The bridged module and its re-exported ONNX both reproduce onnxruntime's outputs (1e-5)."""
    expected = ort.InferenceSession(model.SerializeToString()).run(None, feeds)
    module = from_onnx(model)
    with torch.no_grad():
        result = module(*[torch.from_numpy(f) for f in feeds.values()])
    bridged = [result] if isinstance(result, torch.Tensor) else list(result)
    exported = ort.InferenceSession(str(to_onnx(module, folder / "op.onnx"))).run(None, feeds)
    for want, got, again in zip(expected, bridged, exported, strict=True):
        assert got.shape == want.shape
        np.testing.assert_allclose(got.numpy(), want, atol=1e-5, rtol=1e-6)
        np.testing.assert_allclose(again, want, atol=1e-5, rtol=1e-6)
