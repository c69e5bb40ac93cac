"""Feeds for one forward pass of a decoder: token ids, mask, positions and the KV cache so far."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def empty_cache(layout: Mapping[str, Any], batch: int) -> list[np.ndarray]:
    """A zero-length past for every cache input: the first pass (prefill) attends to nothing before."""
    shape = (batch, int(layout["kv_heads"]), 0, int(layout["head_dim"]))
    return [np.zeros(shape, dtype=np.dtype(layout["cache_dtype"])) for _ in layout["past_inputs"]]


def step_feeds(
    layout: Mapping[str, Any],
    input_ids: np.ndarray,
    attention_mask: np.ndarray,
    past: Sequence[np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Feeds for `input_ids` (batch, new) after `past`; `attention_mask` covers past and new tokens.

    Positions count only attended tokens, so left-padded prompts start at position 0 as in training.
    """
    feeds = {"input_ids": input_ids.astype(np.int64), "attention_mask": attention_mask.astype(np.int64)}
    if layout["position_ids"]:
        positions = np.clip(np.cumsum(attention_mask, axis=1) - 1, 0, None)
        feeds["position_ids"] = positions[:, -input_ids.shape[1] :].astype(np.int64)
    cache = past if past is not None else empty_cache(layout, len(input_ids)) if layout["past_inputs"] else []
    feeds.update(zip(layout["past_inputs"], cache, strict=True))
    return feeds


def split_outputs(
    layout: Mapping[str, Any], names: Sequence[str], outputs: Sequence[Any]
) -> tuple[Any, list[Any]]:
    """The logits and the new cache (present outputs in past-input order) of one pass."""
    by_name = dict(zip(names, outputs, strict=True))
    return by_name["logits"], [by_name[name] for name in layout["present_outputs"]]
