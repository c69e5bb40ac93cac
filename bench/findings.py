"""What the run shows about the int8 defaults: why each rule exists, in this run's own figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from bench.goals import speedups
from bench.report import ModelResult, Row

BATCH = 8
COSINE = 0.99
HAND_DYNAMIC = "ort quantize_dynamic, defaults"


class _Rows:
    """Look-ups into one run's results."""

    def __init__(self, results: list[ModelResult]) -> None:
        self.results = {result.name: result for result in results}

    def __call__(self, model: str, recipe: str) -> Row | None:
        result = self.results.get(model)
        found = next((row for row in result.rows if row.recipe == recipe), None) if result else None
        return found if found and found.comparison else None


def _versus(result: ModelResult | None, default: str, ablation: str) -> str:
    """How much faster the default is than the ablation at batch 8, timed head to head."""
    duel = (
        next((d for d in result.duels if (d.hand, d.modelpress) == (default, ablation)), None)
        if result
        else None
    )
    if duel is None:
        return ""
    # The duel's ratio is default time / ablation time: below 1 the default is faster.
    return (
        f" (head to head: the default {1 / duel.median(BATCH):.2f}x as fast as `{ablation.split(', ')[1]}` at"
        f" batch {BATCH}, noise floor ±{100 * duel.tolerance:.0f}%)"
    )


def _fig(row: Row | None) -> str:
    if row is None:
        return "(not measured)"
    return f"cosine {row.cosine:.5f}, top-1 {row.top1:.4f}, {row.speedup(BATCH):.2f}x at batch {BATCH}"


def layernorm_spread(path: Path | None) -> float | None:
    """The largest LayerNorm channel-range spread (max / median of 3|gamma| + |beta|) in the model."""
    if path is None:
        return None
    model = onnx.load(str(path))
    constants = {tensor.name: numpy_helper.to_array(tensor) for tensor in model.graph.initializer}
    spreads = []
    for node in (n for n in model.graph.node if n.op_type == "LayerNormalization"):
        gamma = np.abs(constants[node.input[1]]) if node.input[1] in constants else None
        beta = np.abs(constants.get(node.input[2], 0.0)) if len(node.input) > 2 else 0.0
        if gamma is not None:
            estimate = 3 * gamma + beta
            spreads.append(float(estimate.max() / np.median(estimate)))
    return max(spreads, default=None)


def findings(results: list[ModelResult]) -> list[str]:
    """Markdown paragraphs explaining the int8 defaults with the figures of this run."""
    row = _Rows(results)
    return ["## Findings: why the int8 defaults are what they are", "", *_outliers(row), *_rules(row)]


def _outliers(row: _Rows) -> list[str]:
    spread = {name: layernorm_spread(result.onnx_path) for name, result in row.results.items()}
    plain, wide = spread.get("attention"), spread.get("attention-outliers")
    per_channel = row("attention-outliers", "quantize.dynamic, per_channel=true, smooth_outliers=false")
    helps = per_channel is not None and per_channel.cosine >= COSINE
    return [
        "**Per-tensor dynamic int8 on a transformer.** On the harness-trained encoder per-tensor dynamic int8"
        f" is faithful (hand: {_fig(row('attention', HAND_DYNAMIC))}): after a minute of training on digits"
        f" the widest LayerNorm channel range is {plain or 0:.1f}x the median, so one activation scale per"
        " tensor loses little. Trained BERT-class models are different: a few LayerNorm output channels are"
        " one to two orders of magnitude wider than the rest. attention-outliers reproduces that"
        f" ({wide or 0:.0f}x) without changing the float function, and per-tensor dynamic int8 then gives"
        f" {_fig(row('attention-outliers', HAND_DYNAMIC))} (hand). The error is on the activation side:"
        " dynamic int8 quantizes each activation tensor with one scale, the outlier channels set it, and the"
        f" other channels are left a few levels; per-channel weights {'do' if helps else 'do not'} help"
        f" ({_fig(per_channel)}). Nor are the attention MatMuls (Q·K^T, softmax·V) the cause: onnxruntime's"
        " dynamic quantizer leaves activation×activation MatMuls in float already. Static int8 does quantize"
        " them, but their inputs come out of their neighbours' quantize/dequantize pairs either way (Softmax,"
        " Transpose, Reshape are quantized too), so excluding them by name changed neither accuracy nor"
        " speed when tried on this encoder; ModelPress does not. The classifier is not kept in float"
        " either: the per-node error report (warnings below) places the largest added error inside the"
        " attention blocks, downstream of the"
        " outlier LayerNorms.",
        "",
        "**The fix: `smooth_outliers` (default on, quantize.dynamic and quantize.static).** When a"
        " LayerNorm's widest estimated channel range (3|gamma| + |beta|) is at least 8x its median and its"
        " output only feeds MatMul/Gemm weights, ModelPress divides those channels by SmoothQuant factors and"
        " multiplies the weight rows they feed by the same factors: the float function is unchanged, the"
        " activation range is flat again, and the step's warnings and `smoothed_layernorms` metric name each"
        " LayerNorm. On attention-outliers, quantize.dynamic:"
        f" {_fig(row('attention-outliers', 'quantize.dynamic'))}; with `smooth_outliers=false`:"
        f" {_fig(row('attention-outliers', 'quantize.dynamic, smooth_outliers=false'))}. quantize.static:"
        f" {_fig(row('attention-outliers', 'quantize.static'))}; with `smooth_outliers=false`:"
        f" {_fig(row('attention-outliers', 'quantize.static, smooth_outliers=false'))}. The outlier model is"
        " a reparametrization, so smoothing can undo it almost exactly; on a real model it splits the range"
        " between activations and weights (SmoothQuant's alpha 0.5).",
        "",
    ]


def _rules(row: _Rows) -> list[str]:
    encoder, mlp, conv = (row.results.get(name) for name in ("attention", "mlp", "conv"))
    static_name, per_channel = "quantize.static", "quantize.static, per_channel=true"
    int8_name = "quantize.static, activation_type=qint8"
    static, dynamic = row("attention", "quantize.static"), row("attention", "quantize.dynamic")
    speed = {
        name: speedups(encoder, found)[1]
        for name, found in (("static", static), ("dynamic", dynamic))
        if found and encoder
    }
    verdict = "(not measured)"
    if len(speed) == 2:
        ratio = speed["dynamic"] / speed["static"]
        faster = "about as fast as" if abs(ratio - 1) < 0.03 else "faster" if ratio > 1 else "slower"
        verdict = (
            f"{faster}{'' if faster.endswith('as') else ' than'} quantize.static here"
            f" ({speed['dynamic']:.2f}x vs {speed['static']:.2f}x over fp32"
            f" at batch {BATCH}, head to head)"
        )
    return [
        '**Per-channel weights only on convolutions (`per_channel="auto"`).** QLinearConv takes one scale'
        " per output channel at no cost; MatMul/Gemm weights with per-channel scales miss onnxruntime's fused"
        f" int8 GEMM path. mlp: default {_fig(row('mlp', 'quantize.static'))}; per_channel=true"
        f" {_fig(row('mlp', per_channel))}{_versus(mlp, static_name, per_channel)}."
        f" conv: default {_fig(row('conv', static_name))}; per_channel=true"
        f" {_fig(row('conv', per_channel))}{_versus(conv, static_name, per_channel)}.",
        "",
        '**uint8 activations (`activation_type="quint8"`).** attention: default'
        f" {_fig(static)}; int8 activations {_fig(row('attention', int8_name))}"
        f"{_versus(encoder, static_name, int8_name)}.",
        "",
        f"**Dynamic or static on the encoder.** quantize.dynamic is {verdict}: the static QDQ graph adds"
        " quantize/dequantize pairs around reshapes, transposes and LayerNorms, while dynamic int8 only"
        " quantizes the GEMM inputs.",
        "",
    ]
