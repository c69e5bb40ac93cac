"""Reductions, softmax and matrix products as torch functions."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from engine.bridge.registry import Call, op


def _prod(x: Tensor, dims: list[int], keepdim: bool) -> Tensor:
    for dim in sorted(dims, reverse=True):
        x = torch.prod(x, dim, keepdim=keepdim)
    return x


REDUCTIONS: dict[str, Callable[[Tensor, list[int], bool], Tensor]] = {
    "ReduceMean": lambda x, d, k: torch.mean(x, d, keepdim=k),
    "ReduceSum": lambda x, d, k: torch.sum(x, d, keepdim=k),
    "ReduceMax": lambda x, d, k: torch.amax(x, d, keepdim=k),
    "ReduceMin": lambda x, d, k: torch.amin(x, d, keepdim=k),
    "ReduceProd": _prod,
    "ReduceL1": lambda x, d, k: torch.sum(x.abs(), d, keepdim=k),
    "ReduceL2": lambda x, d, k: torch.sqrt(torch.sum(x * x, d, keepdim=k)),
    "ReduceSumSquare": lambda x, d, k: torch.sum(x * x, d, keepdim=k),
    "ReduceLogSum": lambda x, d, k: torch.log(torch.sum(x, d, keepdim=k)),
    "ReduceLogSumExp": lambda x, d, k: torch.logsumexp(x, d, keepdim=k),
}


@op(*REDUCTIONS)
def reduce(call: Call) -> Tensor:
    """Reduce over axes given as an attribute (older opsets) or an input; none means all."""
    x = call.x()
    axes = call.ints(1) if call.has(1) else list(call.attr("axes") or [])
    if not axes:
        if call.attr("noop_with_empty_axes", 0):
            return x
        axes = list(range(x.dim()))
    return REDUCTIONS[call.attrs["_op"]](x, [int(a) for a in axes], bool(call.attr("keepdims", 1)))


@op("ArgMax", "ArgMin")
def arg_extreme(call: Call) -> Tensor:
    """Index of the largest or smallest value, first or last occurrence."""
    x = call.x()
    axis, keep = call.attr("axis", 0), bool(call.attr("keepdims", 1))
    fn = torch.argmax if call.attrs["_op"] == "ArgMax" else torch.argmin
    if call.attr("select_last_index", 0):
        return x.shape[axis] - 1 - fn(torch.flip(x, [axis]), axis, keepdim=keep)
    return fn(x, axis, keepdim=keep)


@op("Softmax", "LogSoftmax")
def softmax(call: Call) -> Tensor:
    """Softmax along one axis (opset >= 13) or over the dims from `axis` on, flattened (older opsets)."""
    x = call.x()
    fn = torch.softmax if call.attrs["_op"] == "Softmax" else torch.log_softmax
    if call.opset >= 13:
        return fn(x, call.attr("axis", -1))
    axis = call.attr("axis", 1)
    axis = axis + x.dim() if axis < 0 else axis
    flat = x.flatten(axis) if axis > 0 else x.reshape(1, -1)
    return fn(flat, -1).reshape(x.shape)


@op("MatMul")
def matmul(call: Call) -> Tensor:
    """Matrix product; a constant weight is an nn.Linear layer."""
    if call.layer is not None:
        return call.layer(call.x())
    return torch.matmul(call.x(0), call.x(1))


@op("Gemm")
def gemm(call: Call) -> Tensor:
    """alpha * A' B' + beta * C; a constant B is an nn.Linear layer."""
    if call.layer is not None:
        return call.layer(call.x())
    a, b = call.x(0), call.x(1)
    a = a.t() if call.attr("transA", 0) else a
    b = b.t() if call.attr("transB", 0) else b
    y = call.attr("alpha", 1.0) * torch.matmul(a, b)
    return y + call.attr("beta", 1.0) * call.x(2) if call.has(2) else y


@op("Einsum")
def einsum(call: Call) -> Tensor:
    """Einstein summation."""
    return torch.einsum(call.attr("equation"), *[t for t in call.inputs if t is not None])


@op("CumSum")
def cumsum(call: Call) -> Tensor:
    """Cumulative sum, optionally exclusive and/or reversed."""
    x, axis = call.x(), call.ints(1)[0]
    if call.attr("reverse", 0):
        x = torch.flip(x, [axis])
    y = torch.cumsum(x, axis)
    if call.attr("exclusive", 0):
        y = y - x
    return torch.flip(y, [axis]) if call.attr("reverse", 0) else y


@op("Size")
def size(call: Call) -> Tensor:
    """Number of elements, as an int64 scalar."""
    return torch._shape_as_tensor(call.x()).prod()


@op("NonZero")
def nonzero(call: Call) -> Tensor:
    """Indices of non-zero elements, one row per dim."""
    return torch.nonzero(call.x()).t()
