"""Language-model material for tests: a bundled text corpus, a tiny trained decoder, a MatMul MLP."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from tests import model_zoo
from tests.decoder_export import export_decoder

SEQUENCE = 64
VOCAB = 256  # bytes: the tokenizer of a byte-level model is the UTF-8 encoding itself


def corpus_text() -> str:
    """English prose that ships with Python: the language reference topics behind `help()` (pydoc_data)."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[name] for name in sorted(topics))


def corpus_bytes() -> bytes:
    """The corpus as UTF-8 bytes, the byte-level tokens of the tiny decoder."""
    return corpus_text().encode("utf-8")


def token_windows(count: int, offset: int = 0, length: int = SEQUENCE) -> np.ndarray:
    """`count` consecutive windows of byte tokens, shaped (count, length)."""
    data = np.frombuffer(corpus_bytes(), dtype=np.uint8).astype(np.int64)
    start = offset * length
    return data[start : start + count * length].reshape(count, length)


def tiny_decoder(steps: int = 150) -> nn.Module:
    """A 2-layer Llama (grouped-query attention, rotary positions) trained briefly on the corpus."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        attn_implementation="eager",
    )  # fmt: skip
    model = LlamaForCausalLM(config)
    training = torch.from_numpy(token_windows(256, offset=64))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model.train()
        for step in range(steps):
            batch = training[(step * 16) % len(training) :][:16]
            optimizer.zero_grad()
            model(input_ids=batch, labels=batch).loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


def tiny_decoder_onnx(path: Path) -> Path:
    """The tiny decoder exported with its KV cache."""
    return export_decoder(tiny_decoder(), path)


def write_tokens(path: Path, count: int = 16, offset: int = 0) -> Path:
    """An evaluation dataset of token ids (held out from training when offset < 64)."""
    np.savez(path, input_ids=token_windows(count, offset))
    return path


class DigitsMatMulMLP(nn.Module):
    """The digits MLP over a one-token sequence, so its Linear layers export as MatMul, as in transformers."""

    def __init__(self, hidden: int = 128) -> None:
        super().__init__()
        self.up, self.down = nn.Linear(64, hidden), nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.flatten(1).unsqueeze(1)
        return self.down(torch.relu(self.up(tokens))).squeeze(1)


def matmul_mlp_onnx(path: Path) -> Path:
    """The MatMul MLP trained on digits and exported."""
    return model_zoo.export_onnx(model_zoo.trained(DigitsMatMulMLP), path)
