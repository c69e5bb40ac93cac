"""Resize and Upsample: torch interpolation where it matches ONNX exactly, else explicit indices."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.bridge.registry import Call, op, validator

LINEAR_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}
COORDINATES = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn")
ROUNDING = {
    "round_prefer_floor": lambda v: math.ceil(v - 0.5),
    "round_prefer_ceil": lambda v: math.floor(v + 0.5),
    "floor": math.floor,
    "ceil": math.ceil,
}


def _settings(call: Call) -> tuple[str, str, str]:
    """Mode, coordinate transformation and nearest rounding, with each opset's defaults."""
    if call.attrs["_op"] == "Upsample" or call.opset < 11:
        return call.attr("mode", "nearest"), "asymmetric", "floor"
    return (
        call.attr("mode", "nearest"),
        call.attr("coordinate_transformation_mode", "half_pixel"),
        call.attr("nearest_mode", "round_prefer_floor"),
    )


def _target(call: Call, x: Tensor) -> tuple[list[int], list[float] | None]:
    """Output spatial sizes, and the scales when given as scales rather than sizes."""
    spatial = [int(d) for d in x.shape[2:]]
    if call.attrs["_op"] == "Upsample" and not call.has(1):
        scales = [float(s) for s in call.attr("scales")]
    else:
        index = 1 if call.attrs["_op"] == "Upsample" or call.opset < 11 else 2
        if call.has(3):
            return [int(s) for s in call.ints(3)[2:]], None
        known = call.const(index)
        if known is None:
            raise ValueError("Resize scales must be constant")
        scales = [float(s) for s in known.reshape(-1)]
    if any(s != 1.0 for s in scales[:2]):
        raise ValueError("Resize may only scale spatial dims")
    rest = scales[2:]
    return [math.floor(size * s) for size, s in zip(spatial, rest, strict=True)], rest


def _source(out: int, size: int, scale: float, coordinates: str, rounding: str) -> list[int]:
    """For each output index, the nearest input index under ONNX's coordinate rules."""
    picks = []
    for i in range(out):
        if coordinates == "asymmetric":
            v = i / scale
        elif coordinates == "tf_half_pixel_for_nn":
            v = (i + 0.5) / scale
        elif coordinates == "align_corners":
            v = i * (size - 1) / (out - 1) if out > 1 else 0.0
        elif coordinates == "pytorch_half_pixel" and out == 1:
            v = 0.0
        else:
            v = (i + 0.5) / scale - 0.5
        picks.append(min(max(int(ROUNDING[rounding](v)), 0), size - 1))
    return picks


@op("Resize", "Upsample")
def resize(call: Call) -> Tensor:
    """Nearest or linear resize of the spatial dims."""
    x = call.x()
    mode, coordinates, rounding = _settings(call)
    out, scales = _target(call, x)
    if mode == "linear":
        corners = coordinates == "align_corners"
        if scales is not None and not corners:
            return F.interpolate(x, scale_factor=scales, mode=LINEAR_MODES[len(out)], align_corners=False)
        return F.interpolate(x, size=out, mode=LINEAR_MODES[len(out)], align_corners=corners)
    if coordinates == "asymmetric" and rounding == "floor" and scales is not None:
        return F.interpolate(x, scale_factor=scales, mode="nearest")
    for axis, (size, target) in enumerate(zip(x.shape[2:], out, strict=True)):
        scale = scales[axis] if scales is not None else target / int(size)
        picks = _source(target, int(size), scale, coordinates, rounding)
        x = torch.index_select(x, axis + 2, torch.tensor(picks, dtype=torch.int64, device=x.device))
    return x


@validator("Resize", "Upsample")
def check_resize(attrs: Mapping[str, Any]) -> str | None:
    """Cubic, antialiased, axis-restricted or unusual coordinate modes are not bridged."""
    mode = attrs.get("mode", "nearest")
    coordinates = attrs.get("coordinate_transformation_mode", "half_pixel")
    if mode not in ("nearest", "linear"):
        return f"Resize mode {mode}"
    if mode == "linear" and (attrs.get("_op") == "Upsample" or attrs.get("_opset", 11) < 11):
        return "linear Upsample/Resize with asymmetric coordinates (opset < 11)"
    if attrs.get("antialias", 0) or attrs.get("axes"):
        return "Resize with antialias or axes"
    if coordinates not in COORDINATES or (mode == "linear" and coordinates not in COORDINATES[:3]):
        return f"Resize {mode} with {coordinates} coordinates"
    return None
