"""A weight's block-wise integer grid, as MatMulNBits stores it, and round-to-nearest onto it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Quantized:
    """A weight [K, N] as integers on its grid: value = (q - zero) * scale + offset, per block of K rows.

    `offset` is None on a plain MatMulNBits grid; with float zero points (a block's exact minimum) it
    holds what the integer zero point leaves over (block_offsets.py runs it on the int4 kernels).
    """

    q: np.ndarray  # uint8 [K, N], 0 .. 2**bits - 1
    scale: np.ndarray  # float32 [blocks, N]
    zero: np.ndarray  # uint8 [blocks, N]
    offset: np.ndarray | None = None  # float32 [blocks, N]

    def dequantized(self, block_size: int) -> np.ndarray:
        """The float weight the integers stand for."""
        rows = np.arange(self.q.shape[0]) // block_size
        value = (self.q.astype(np.float32) - self.zero[rows]) * self.scale[rows]
        if self.offset is not None:
            value = value + self.offset[rows]
        return value.astype(np.float32)


def grid(
    rows: np.ndarray, bits: int, symmetric: bool, float_offsets: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scale, integer zero point and float offset per column for a block of rows (min/max grid)."""
    top = 2**bits - 1
    offset = np.zeros(rows.shape[1])
    if symmetric:
        # Integers 0 .. 2^b - 1 around the zero point 2^(b-1) that MatMulNBits implies without zero
        # points. As onnxruntime's own blockwise quantizer does, the scale takes the sign that maps the
        # largest-magnitude weight to the integer end with one more step (-2^(b-1)).
        half = 2 ** (bits - 1)
        extreme = np.take_along_axis(rows, np.abs(rows).argmax(axis=0)[None], axis=0)[0]
        scale = extreme / -half
        zero = np.full(rows.shape[1], half, dtype=np.float64)
    elif float_offsets:
        # The block's own minimum and maximum are grid points: integers 0 .. top from the minimum.
        low, high = rows.min(axis=0), rows.max(axis=0)
        scale = np.where(high > low, (high - low) / top, 1.0)
        zero = np.clip(np.round(-low / scale), 0, top)
        offset = low + zero * scale
    else:
        # An integer zero point can only place the grid so that zero is on it, so the range spans 0.
        low, high = np.minimum(rows.min(axis=0), 0.0), np.maximum(rows.max(axis=0), 0.0)
        scale = (high - low) / top
        zero = np.clip(np.round(-low / np.where(scale != 0, scale, 1.0)), 0, top)
    return np.where(scale != 0, scale, 1.0), zero, offset


def round_to_nearest(
    weight: np.ndarray, bits: int, block_size: int, symmetric: bool, float_offsets: bool
) -> Quantized:
    """Each block of K rows on its min/max grid, every weight rounded to its nearest grid point."""
    top = 2**bits - 1
    rows = weight.shape[0]
    blocks = -(-rows // block_size)
    q = np.zeros(weight.shape, dtype=np.uint8)
    scales, zeros, offsets = (np.zeros((blocks, weight.shape[1])) for _ in range(3))
    for block in range(blocks):
        part = weight[block * block_size : (block + 1) * block_size].astype(np.float64)
        scale, zero, offset = grid(part, bits, symmetric, float_offsets)
        scales[block], zeros[block], offsets[block] = scale, zero, offset
        q[block * block_size : (block + 1) * block_size] = np.clip(
            np.round((part - offset) / scale) + zero, 0, top
        )
    return Quantized(
        q,
        scales.astype(np.float32),
        zeros.astype(np.uint8),
        offsets.astype(np.float32) if float_offsets else None,
    )
