"""Language-model evaluation against transformers itself: perplexity, greedy decoding with the KV cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch

from engine.evaluate.generation import generate
from engine.evaluate.perplexity import score_tokens
from engine.evaluate.sessions import make_session
from engine.ingest.decoder import decoder_layout
from engine.ingest.summary import summarize
from tests import language_models
from tests.decoder_export import export_decoder


@pytest.fixture(scope="module")
def untrained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """A 2-layer Llama with random weights (a sharp, non-uniform next-token distribution) and its export."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(1)
    config = LlamaConfig(
        vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, attn_implementation="eager",
    )  # fmt: skip
    model = LlamaForCausalLM(config).eval()
    return model, export_decoder(model, tmp_path_factory.mktemp("decoder") / "decoder.onnx")


def _layout(path: Path) -> dict[str, Any]:
    layout = summarize(onnx.load(str(path)), "onnx")["signature"]["decoder"]
    assert layout is not None
    return layout


def test_perplexity_is_the_exponential_of_transformers_own_shifted_loss(untrained: tuple[Any, Path]) -> None:
    model, path = untrained
    ids = language_models.token_windows(3, length=48)

    score = score_tokens(make_session(path, 1), _layout(path), ids, np.ones_like(ids))

    with torch.no_grad():
        losses = [
            model(input_ids=torch.from_numpy(row[None]), labels=torch.from_numpy(row[None])).loss
            for row in ids
        ]
    assert score.tokens == 3 * 47
    assert score.perplexity == pytest.approx(
        float(np.exp(np.mean([float(loss) for loss in losses]))), rel=1e-4
    )


def test_padding_is_left_out_of_the_loss(untrained: tuple[Any, Path]) -> None:
    _, path = untrained
    ids = language_models.token_windows(2, length=32)
    mask = np.ones_like(ids)
    mask[1, 20:] = 0
    session, layout = make_session(path, 1), _layout(path)

    padded = score_tokens(session, layout, ids, mask)
    first = score_tokens(session, layout, ids[:1], mask[:1])
    second = score_tokens(session, layout, ids[1:, :20], mask[1:, :20])

    assert padded.tokens == 31 + 19 == first.tokens + second.tokens
    total = first.tokens * np.log(first.perplexity) + second.tokens * np.log(second.perplexity)
    assert padded.perplexity == pytest.approx(float(np.exp(total / padded.tokens)), rel=1e-5)


def test_greedy_decoding_with_the_cache_matches_transformers_generate(untrained: tuple[Any, Path]) -> None:
    model, path = untrained
    prompt = language_models.token_windows(2, length=12)

    _, _, produced = generate(make_session(path, 1), _layout(path), prompt, new_tokens=10)

    with torch.no_grad():
        expected = model.generate(
            torch.from_numpy(prompt), max_new_tokens=10, min_new_tokens=10, do_sample=False
        )
    np.testing.assert_array_equal(produced, expected[:, 12:].numpy())


def test_a_classifier_is_not_a_decoder(mlp_onnx: Path) -> None:
    signature = summarize(onnx.load(str(mlp_onnx)), "onnx")["signature"]

    assert "decoder" not in signature
    no_cache = {
        "inputs": [{"name": "input_ids"}, {"name": "attention_mask"}],
        "outputs": [{"name": "logits"}],
    }
    assert decoder_layout(no_cache) == {
        "position_ids": False, "vocab_size": None, "past_inputs": [], "present_outputs": [], "kv_heads": None,
        "head_dim": None, "cache_dtype": None,
    }  # fmt: skip


def test_a_sequence_classifier_on_token_ids_is_not_a_decoder() -> None:
    """DistilBERT's classifier takes input_ids and attention_mask too, but its logits are [batch, labels]."""
    classifier = {
        "inputs": [{"name": "input_ids", "shape": ["batch", "sequence"]},
                   {"name": "attention_mask", "shape": ["batch", "sequence"]}],
        "outputs": [{"name": "logits", "shape": ["batch", 2]}],
    }  # fmt: skip
    assert decoder_layout(classifier) is None
    language_model = {**classifier, "outputs": [{"name": "logits", "shape": ["batch", "sequence", 256]}]}
    assert decoder_layout(language_model) is not None


def _character_classes(tokens: np.ndarray) -> np.ndarray:
    """A tag per byte of the text: letter, digit, space, punctuation, other (a tagger's labels)."""
    text = [chr(int(token)) for token in tokens.reshape(-1)]
    tags = [
        0 if c.isalpha() else 1 if c.isdigit() else 2 if c.isspace() else 3 if c in ".,;:!?'\"()" else 4
        for c in text
    ]
    return np.array(tags, np.int64).reshape(tokens.shape)


def test_a_token_classifier_is_not_a_decoder_and_is_scored_per_token(tmp_path: Path) -> None:
    """A tagger (BERT for token classification) takes input_ids and attention_mask and returns
    [batch, sequence, labels] logits like a language model, but over 5 tags, not the 256 tokens its
    embedding holds: it is compared as a classifier, top-1 over every token of real text."""
    from transformers import BertConfig, BertForTokenClassification

    from engine.contract import StepContext
    from engine.evaluate.compare import compare_models
    from engine.techniques.quantize import dynamic
    from service.catalog.quantize import DynamicQuantParams

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=language_models.VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=language_models.SEQUENCE, num_labels=5,
    )  # fmt: skip
    tokens = language_models.token_windows(24)
    tags = _character_classes(tokens)
    model = BertForTokenClassification(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    ids, labels = torch.from_numpy(tokens[:16]), torch.from_numpy(tags[:16])
    for _ in range(30):  # a few steps: the byte's class is easy to learn from its embedding
        optimizer.zero_grad()
        model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss.backward()
        optimizer.step()
    model.eval()

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    path = tmp_path / "tagger.onnx"
    axes = {name: {0: "batch", 1: "sequence"} for name in ("input_ids", "attention_mask", "logits")}
    torch.onnx.export(
        Logits(), (ids[:2], torch.ones_like(ids[:2])), str(path), input_names=["input_ids", "attention_mask"],
        output_names=["logits"], dynamic_axes=axes, dynamo=False,
    )  # fmt: skip
    signature = summarize(onnx.load(str(path)), "onnx")["signature"]
    assert "decoder" not in signature
    assert signature["outputs"][0]["shape"][-1] == 5

    held_out = {"input_ids": tokens[16:], "attention_mask": np.ones_like(tokens[16:]), "labels": tags[16:]}
    np.savez(tmp_path / "held_out.npz", **held_out)
    candidate = tmp_path / "int8.onnx"
    dynamic.run(path, candidate, DynamicQuantParams(), StepContext(workdir=tmp_path))
    comparison = compare_models(
        str(path), str(candidate), signature=signature, dataset_path=str(tmp_path / "held_out.npz"),
        metric=None, batch_sizes=[1], max_accuracy_drop=None, threads=1, time_budget_s=0.3,
        warmup_runs=2, min_runs=3,
    )  # fmt: skip
    session = make_session(path, 1)
    logits = session.run(None, {"input_ids": tokens[16:], "attention_mask": np.ones_like(tokens[16:])})[0]
    per_token = float(np.mean(logits.argmax(-1) == tags[16:]))
    assert comparison["baseline"]["accuracy"]["top1"] == pytest.approx(per_token)
    assert per_token > 0.6  # trained: well above the 0.2 of guessing among five tags
    assert "perplexity" not in comparison["baseline"]["accuracy"]


@pytest.mark.parametrize("stored", ["initializer", "constant", "int8 table", "cast ids"])
def test_the_embedding_table_is_found_however_it_is_stored(stored: str) -> None:
    """token_embedding_rows reads the rows through a Cast of the ids, a Constant or a DequantizeLinear."""
    from onnx import TensorProto, helper, numpy_helper

    from engine.ingest.decoder import token_embedding_rows

    table = np.zeros((300, 8), np.float32)
    nodes, initializers, ids = [], [], "input_ids"
    if stored == "cast ids":
        nodes.append(helper.make_node("Cast", ["input_ids"], ["ids32"], to=TensorProto.INT32))
        ids = "ids32"
    if stored == "constant":
        nodes.append(helper.make_node("Constant", [], ["table"], value=numpy_helper.from_array(table)))
    elif stored == "int8 table":
        initializers += [
            numpy_helper.from_array(table.astype(np.int8), "table_q"),
            numpy_helper.from_array(np.array(0.1, np.float32), "scale"),
        ]
        nodes.append(helper.make_node("DequantizeLinear", ["table_q", "scale"], ["table"]))
    else:
        initializers.append(numpy_helper.from_array(table, "table"))
    nodes.append(helper.make_node("Gather", ["table", ids], ["embedded"]))
    graph = helper.make_graph(
        nodes, "embedding", [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "s"])],
        [helper.make_tensor_value_info("embedded", TensorProto.FLOAT, ["b", "s", 8])], initializers,
    )  # fmt: skip
    assert token_embedding_rows(helper.make_model(graph)) == 300


def test_a_head_padded_past_the_vocabulary_is_still_a_decoder() -> None:
    signature = {
        "inputs": [{"name": "input_ids", "shape": ["batch", "sequence"]},
                   {"name": "attention_mask", "shape": ["batch", "sequence"]}],
        "outputs": [{"name": "logits", "shape": ["batch", "sequence", 320]}],
    }  # fmt: skip
    assert decoder_layout(signature, token_rows=300) is not None
    tagger = {**signature, "outputs": [{"name": "logits", "shape": ["batch", "sequence", 9]}]}
    assert decoder_layout(tagger, token_rows=300) is None
