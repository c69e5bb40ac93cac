"""A transformers causal language model exported to ONNX with its KV cache (decoder signature)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch


class _WithCache(torch.nn.Module):
    """Flat tensors in and out: input_ids, attention_mask, position_ids, past k/v per layer."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model
        self.layers = int(model.config.num_hidden_layers)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        *past: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        from transformers import DynamicCache

        cache = DynamicCache(
            ddp_cache_data=[(past[2 * i], past[2 * i + 1]) for i in range(self.layers)],
            config=self.model.config,
        )
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=cache,
            use_cache=True,
        )
        present = []
        for layer in out.past_key_values.layers:
            present += [layer.keys, layer.values]
        return (out.logits, *present)


def export_decoder(model: Any, path: Path, opset: int = 17) -> Path:
    """Write `model` (a transformers causal LM, eager attention) as an ONNX decoder with KV cache."""
    config = model.config
    layers = int(config.num_hidden_layers)
    kv_heads = int(getattr(config, "num_key_value_heads", None) or config.num_attention_heads)
    head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)
    batch, past_len, new = 2, 3, 4
    ids = torch.randint(0, int(config.vocab_size), (batch, new))
    mask = torch.ones(batch, past_len + new, dtype=torch.int64)
    positions = torch.arange(past_len, past_len + new).unsqueeze(0).expand(batch, -1).contiguous()
    past = [torch.randn(batch, kv_heads, past_len, head_dim) for _ in range(2 * layers)]
    past_names = [f"past_key_values.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]
    present_names = [f"present.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]
    axes: dict[str, dict[int, str]] = {
        "input_ids": {0: "batch", 1: "sequence"},
        "attention_mask": {0: "batch", 1: "total_sequence"},
        "position_ids": {0: "batch", 1: "sequence"},
        "logits": {0: "batch", 1: "sequence"},
    }
    axes |= {name: {0: "batch", 2: "past_sequence"} for name in past_names}
    axes |= {name: {0: "batch", 2: "total_sequence"} for name in present_names}
    model.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _WithCache(model),
            (ids, mask, positions, *past),
            str(path),
            input_names=["input_ids", "attention_mask", "position_ids", *past_names],
            output_names=["logits", *present_names],
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
        )
    return path
