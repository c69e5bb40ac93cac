"""Recognize a causal language model's decoder signature (token ids in, logits and KV cache out)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

PAST = re.compile(r"^past_key_values\.(\d+)\.(key|value)$")
PRESENT = "present.{layer}.{kind}"
TOKEN_INPUTS = ("input_ids", "attention_mask")


def decoder_layout(signature: Mapping[str, Any], token_rows: int | None = None) -> dict[str, Any] | None:
    """What evaluation needs to drive the model as a decoder, or None when it is not one.

    A decoder takes `input_ids` and `attention_mask` (optionally `position_ids` and
    `past_key_values.<layer>.key|value`) and returns `logits` (optionally `present.<layer>.key|value`).
    A KV cache counts only when every past input has a matching present output and its head count
    and head size are fixed numbers, since an empty cache for the first pass must be built from them.
    `token_rows` is the size of the table the token ids index (token_embedding_rows): a language
    model scores every token of it, so logits over fewer classes are a token classifier's (a
    tagger's [batch, sequence, labels]).
    """
    inputs = {spec["name"]: spec for spec in signature.get("inputs", [])}
    outputs = {spec["name"]: spec for spec in signature.get("outputs", [])}
    if not all(name in inputs for name in TOKEN_INPUTS) or "logits" not in outputs:
        return None
    past = sorted(
        (int(match[1]), 0 if match[2] == "key" else 1, name) for name in inputs if (match := PAST.match(name))
    )
    known = {*TOKEN_INPUTS, "position_ids", *(name for _, _, name in past)}
    if set(inputs) - known:
        return None  # other inputs (e.g. use_cache_branch) mean a calling convention not driven here
    logits_shape = outputs["logits"].get("shape") or []
    if logits_shape and len(logits_shape) != 3:
        return None  # a sequence classifier's [batch, labels] (DistilBERT's inputs are these two too)
    classes = logits_shape[-1] if logits_shape else None
    if token_rows is not None and isinstance(classes, int) and classes < token_rows:
        # A token classifier's [batch, sequence, labels]; a head padded past the vocabulary is still a
        # language model's.
        return None
    layout: dict[str, Any] = {
        "position_ids": "position_ids" in inputs,
        "vocab_size": classes if isinstance(classes, int) else None,
        "past_inputs": [],
        "present_outputs": [],
        "kv_heads": None,
        "head_dim": None,
        "cache_dtype": None,
    }
    if not past:
        return layout
    presents = [PRESENT.format(layer=layer, kind=("key", "value")[kind]) for layer, kind, _ in past]
    shapes = [inputs[name].get("shape") or [] for _, _, name in past]
    dims = {(shape[1], shape[3]) for shape in shapes if len(shape) == 4}
    if any(name not in outputs for name in presents) or len(dims) != 1:
        return None
    heads, head_dim = next(iter(dims))
    if not isinstance(heads, int) or not isinstance(head_dim, int):
        return None
    layout.update(
        past_inputs=[name for _, _, name in past],
        present_outputs=presents,
        kv_heads=heads,
        head_dim=head_dim,
        cache_dtype=inputs[past[0][2]]["dtype"],
    )
    return layout


def token_embedding_rows(model: Any) -> int | None:
    """Rows of the table that a Gather indexes by `input_ids` (through a Cast at most), when it is stored.

    A weight-only-quantized table is read through its DequantizeLinear; any other producer leaves the
    size unknown (None).
    """
    graph = model.graph
    stored = {tensor.name: list(tensor.dims) for tensor in graph.initializer}
    producers = {output: node for node in graph.node for output in node.output}
    for node in graph.node:
        values = [attribute.t for attribute in node.attribute if attribute.name == "value"]
        if node.op_type == "Constant" and values:
            stored[node.output[0]] = list(values[0].dims)
    ids = {"input_ids"} | {
        node.output[0] for node in graph.node if node.op_type == "Cast" and list(node.input) == ["input_ids"]
    }
    for node in graph.node:
        if node.op_type != "Gather" or len(node.input) < 2 or node.input[1] not in ids:
            continue
        if any(attribute.name == "axis" and attribute.i != 0 for attribute in node.attribute):
            continue  # not a lookup of rows
        table = node.input[0]
        producer = producers.get(table)
        if producer is not None and producer.op_type == "DequantizeLinear":
            table = producer.input[0]
        dims = stored.get(table)
        if dims:
            return int(dims[0])
    return None
