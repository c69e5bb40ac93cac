"""The comparison as rows of formatted cells, shared by the HTML page and the CLI tables."""

from __future__ import annotations

from typing import Any

Row = dict[str, str]


def human_bytes(value: Any) -> str:
    """1234567 -> '1.18 MiB'."""
    if not isinstance(value, int | float):
        return "—"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} GiB"


def number(value: Any, digits: int = 3) -> str:
    """Integers with thousands separators, floats to a few significant digits, '—' for missing."""
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}" if abs(value) >= 1 else f"{value:.{digits + 1}g}"
    return str(value)


def ratio(new: Any, old: Any) -> str:
    """'×0.26 (−74.0%)' for new/old, or '—' when either is missing."""
    if not isinstance(new, int | float) or not isinstance(old, int | float) or not old:
        return "—"
    factor = new / old
    return f"×{factor:.2f} ({(factor - 1) * 100:+.1f}%)"


def batches(comparison: dict[str, Any]) -> list[str]:
    """Batch sizes measured, ascending."""
    sides = (comparison.get("baseline") or {}, comparison.get("candidate") or {})
    return sorted({b for side in sides for b in (side.get("latency_ms") or {})}, key=int)


def comparison_rows(comparison: dict[str, Any]) -> list[Row]:
    """One row per figure: label, original, compressed and the change."""
    base, cand = comparison.get("baseline") or {}, comparison.get("candidate") or {}
    delta = comparison.get("delta") or {}
    rows: list[Row] = [
        _row(
            "size",
            human_bytes(base.get("size_bytes")),
            human_bytes(cand.get("size_bytes")),
            ratio(cand.get("size_bytes"), base.get("size_bytes")),
        ),
        _row(
            "size, gzip-compressed",
            human_bytes(base.get("compressed_size_bytes")),
            human_bytes(cand.get("compressed_size_bytes")),
            ratio(cand.get("compressed_size_bytes"), base.get("compressed_size_bytes")),
        ),
        _row(
            "parameters",
            number(base.get("parameters")),
            number(cand.get("parameters")),
            ratio(cand.get("parameters"), base.get("parameters")),
        ),
        _row(
            "non-zero parameters",
            number(base.get("nonzero_parameters")),
            number(cand.get("nonzero_parameters")),
            ratio(cand.get("nonzero_parameters"), base.get("nonzero_parameters")),
        ),
        _row(
            "peak memory",
            human_bytes(base.get("peak_memory_bytes")),
            human_bytes(cand.get("peak_memory_bytes")),
            ratio(cand.get("peak_memory_bytes"), base.get("peak_memory_bytes")),
        ),
    ]
    for metric, value in (base.get("accuracy") or {}).items():
        drop = delta.get("accuracy_drop")
        change = f"drop {number(drop, 4)}" if isinstance(drop, int | float) else "—"
        rows.append(
            _row(
                f"accuracy ({metric})",
                number(value, 4),
                number((cand.get("accuracy") or {}).get(metric), 4),
                change,
            )
        )
    speedup = delta.get("speedup") or {}
    for batch in batches(comparison):
        base_ms, cand_ms = (
            (base.get("latency_ms") or {}).get(batch) or {},
            (cand.get("latency_ms") or {}).get(batch) or {},
        )
        for percentile in ("p50", "p95", "p99"):
            change = ratio(cand_ms.get(percentile), base_ms.get(percentile))
            if percentile == "p50" and isinstance(speedup.get(batch), int | float):
                change = f"{speedup[batch]:.2f}× speed-up"
            rows.append(
                _row(
                    f"latency {percentile}, batch {batch} (ms)",
                    number(base_ms.get(percentile)),
                    number(cand_ms.get(percentile)),
                    change,
                )
            )
        base_tp = (base.get("throughput_per_s") or {}).get(batch)
        cand_tp = (cand.get("throughput_per_s") or {}).get(batch)
        rows.append(
            _row(
                f"throughput, batch {batch} (/s)",
                number(base_tp, 1),
                number(cand_tp, 1),
                ratio(cand_tp, base_tp),
            )
        )
    return rows


def fidelity_rows(comparison: dict[str, Any]) -> list[Row]:
    """The compressed model's agreement with the original's outputs."""
    fidelity = (comparison.get("delta") or {}).get("fidelity") or {}
    return [{"label": key.replace("_", " "), "value": number(value, 5)} for key, value in fidelity.items()]


def node_error_rows(comparison: dict[str, Any]) -> list[Row]:
    """The nodes whose outputs diverge most from the original's, worst first."""
    return [
        {
            "node": str(row.get("node")),
            "op_type": str(row.get("op_type", "")),
            "cosine": number(row.get("cosine"), 5),
            "relative_error": number(row.get("relative_error"), 4),
            "added_error": number(row.get("added_error"), 4),
        }
        for row in comparison.get("node_errors") or []
        if isinstance(row, dict)
    ]


def verdict_rows(comparison: dict[str, Any]) -> list[Row]:
    """The verdict's yes/no answers (warnings are listed separately)."""
    verdict = comparison.get("verdict") or {}
    return [
        {
            "label": key.replace("_", " "),
            "value": "yes" if value else "no" if value is False else "—",
            "ok": str(value),
        }
        for key, value in verdict.items()
        if key != "warnings" and (isinstance(value, bool) or value is None)
    ]


def _row(label: str, baseline: str, candidate: str, change: str) -> Row:
    return {"label": label, "baseline": baseline, "candidate": candidate, "change": change}


def model_job_cells(job: dict[str, Any]) -> list[str]:
    """A row of the model report's jobs table: latency, loss, size, speedup, budget, frontier."""
    return [
        f"{number(job['latency_ms'])} ms at batch {job['batch']}",
        number(job["loss"], 4),
        number(job.get("size_bytes"), 0),
        f"{number(job.get('speedup'), 2)}x",
        {True: "met", False: "missed", None: "—"}[job.get("within_accuracy_budget")],
        "yes" if job.get("frontier") else "",
    ]
