"""One matrix cell from a finished job: the result's figures, or the problem that stopped it."""

from __future__ import annotations

from typing import Any

# Slugs that mean the service, not the model or the parameters, went wrong: a cell must never be one.
GENERIC = {"internal-error", "worker-crashed", "step-error", "max-attempts", "invalid-model"}
FAST_COSINE = 0.99
# Head-to-head timings on a shared two-core machine move by a few percent run to run: a speedup
# counts as one only past this factor.
NOISE_FLOOR = 1.05


def cell(job: dict[str, Any]) -> dict[str, Any]:
    """Figures of a succeeded job, or the problem's slug and detail (and whether it is generic)."""
    if job["status"] == "succeeded":
        delta = job["comparison"]["delta"]
        return {
            "status": "result",
            "size_ratio": round(delta["size_ratio"], 3),
            "speedup": {batch: round(value, 2) for batch, value in delta["speedup"].items()},
            "cosine": _rounded(delta["fidelity"].get("cosine")),
            "top1_agreement": _rounded(delta["fidelity"].get("top1_agreement")),
        }
    error = job.get("error") or {}
    slug = str(error.get("type", "")).rsplit("/", 1)[-1] or job["status"]
    detail = str(error.get("detail") or job.get("stage") or "")
    invalid_graph = "INVALID_GRAPH" in detail or "InvalidGraph" in detail
    return {
        "status": "generic-error" if slug in GENERIC or invalid_graph else "refusal",
        "problem": slug if job["status"] != "timed-out" else "bench-timeout",
        "detail": detail[:400],
    }


def faster_at_fidelity(entry: dict[str, Any]) -> bool:
    """A result faster than the original (past the noise floor) at batch 1 or 8, output cosine >= 0.99."""
    if entry["status"] != "result" or entry["cosine"] is None or entry["cosine"] < FAST_COSINE:
        return False
    return any(value >= NOISE_FLOOR for value in entry["speedup"].values())


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)
