"""Render the report document as one self-contained HTML page (Chart.js inlined, no network)."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from service.finite import finite_json
from service.report import charts, decision, decision_charts, layers, tables
from service.report.recovery import recovery_table

CHART_JS_VERSION = "4.6.1"  # MIT licence; see service/report/static/VENDORED.md


@lru_cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("service.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


@lru_cache
def chart_js() -> str:
    """The vendored Chart.js UMD build, made safe to inline in a <script> element."""
    source = resources.files("service.report").joinpath("static/chart.umd.min.js").read_text("utf-8")
    return source.replace("</script", "<\\/script")


def _script_json(value: Any) -> Markup:
    # Escaped so that no string in the data (a node name, a warning) can close the <script> element.
    text = json.dumps(finite_json(value)[0], allow_nan=False, default=str)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)  # escaped above for the script context


def _trial_note(report: dict[str, Any]) -> str:
    if any((step.get("metrics") or {}).get("trials") for step in report.get("steps") or []):
        return " Trials were timed and scored by their step, on its data, not in the final side-by-side run."
    return ""


def chart_specs(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Every chart the page shows: id, title, caption and Chart.js config."""
    comparison = report.get("comparison") or {}
    specs: list[dict[str, Any]] = []
    for chart_id, title, caption, config in (
        (
            "latency",
            "Latency percentiles by batch size",
            "Lower is better.",
            charts.latency_chart(comparison),
        ),
        ("throughput", "Throughput by batch size", "Higher is better.", charts.throughput_chart(comparison)),
        (
            "quality",
            "Quality against latency",
            "Up and to the left is better; every measured candidate." + _trial_note(report),
            charts.quality_chart(report),
        ),
    ):
        if config is not None:
            specs.append({"id": chart_id, "title": title, "caption": caption, "config": config})
    specs += _decision_specs(report, comparison)
    errors = layers.node_error_chart(comparison.get("node_errors"))
    if errors is not None:
        rows = 2 * len(comparison["node_errors"])  # two bars per node
        caption = "Where the compressed model's outputs start to differ from the original's, worst first."
        specs.append(
            {
                "id": "node-errors",
                "title": "Error per node",
                "caption": caption,
                "config": errors,
                "rows": 2 * rows,  # labels wrap to two lines
            }
        )
    final_sparsity = (comparison.get("candidate") or {}).get("per_layer_sparsity")
    if final_sparsity and _pruned(report):
        values = layers.per_layer_series({"per_layer_sparsity": final_sparsity})["per_layer_sparsity"][1]
        specs.append(
            {
                "id": "final-sparsity",
                "title": "Final model: sparsity per layer",
                "caption": f"Fraction of zero weights in the {len(values)} largest layers of the result.",
                "config": layers.per_layer_chart("sparsity (fraction of zero weights)", values),
                "rows": len(values),
            }
        )
    for step in report.get("steps") or []:
        for key, (axis, values) in layers.per_layer_series(step.get("metrics") or {}).items():
            specs.append(
                {
                    "id": f"step{step['index']}-{key}",
                    "title": f"Step {step['index'] + 1} ({step['technique']}): {axis} per layer",
                    "caption": f"{len(values)} layers.",
                    "config": layers.per_layer_chart(axis, values),
                    "rows": len(values),
                }
            )
    return specs


def _pruned(report: dict[str, Any]) -> bool:
    """Sparsity bars only apply when a step pruned; a quantize-only job's zeros are not its doing."""
    return any(str(step.get("technique", "")).startswith("prune.") for step in report.get("steps") or [])


def _decision_specs(report: dict[str, Any], comparison: dict[str, Any]) -> list[dict[str, Any]]:
    """The profile chart and the Pareto chart of search trials, where they apply."""
    specs = []
    profile = decision_charts.profile_chart(comparison)
    if profile is not None:
        specs.append(
            {
                "id": "profile",
                "title": "Where the time goes: per operator type",
                "caption": decision_charts.profile_summary(comparison)
                + " From onnxruntime's profiler, run apart from the timed runs.",
                "config": profile,
                "rows": len(profile["data"]["labels"]),
            }
        )
    pareto = decision_charts.report_pareto(report)
    if pareto is not None:
        specs.append(
            {
                "id": "pareto",
                "title": "Search trials: accuracy drop against latency",
                "caption": "Lower left is better; the green line joins the trials no other trial beats on"
                " latency, accuracy and size at once (the Pareto frontier). Ringed: the one chosen.",
                "config": pareto,
            }
        )
    return specs


def step_summaries(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Steps with their scalar metrics as text; nested ones are charted or shown as JSON."""
    summaries = []
    for step in report.get("steps") or []:
        metrics = step.get("metrics") or {}
        scalars = {k: tables.number(v, 4) for k, v in metrics.items() if not isinstance(v, dict | list)}
        recovery = recovery_table(metrics)
        kept_whole = [entry for entry in metrics.get("kept_whole") or [] if isinstance(entry, dict)]
        shown = ({"recovery"} if recovery else set()) | ({"kept_whole"} if kept_whole else set())
        nested = {k: v for k, v in metrics.items() if isinstance(v, dict | list) and k not in shown}
        summaries.append(
            {
                **step,
                "scalars": scalars,
                "recovery": recovery,
                # Nodes whose channels structured pruning left alone, and why: a user can act on it.
                "kept_whole": kept_whole,
                "nested": json.dumps(nested, indent=1, default=str)[:4000] if nested else "",
            }
        )
    return summaries


def content_security_policy(nonce: str) -> str:
    """The page's policy: nothing loads from anywhere; only its own nonced scripts and styles run.

    Inline `style` attributes (a chart's height) are allowed; they cannot run code.
    """
    return (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src-elem 'nonce-{nonce}';"
        " style-src-attr 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def render_html(report: dict[str, Any], nonce: str = "") -> str:
    """The report page: verdict and warnings, comparison tables, steps, charts.

    `nonce` marks the page's own scripts and styles for `content_security_policy(nonce)`.
    """
    comparison = report.get("comparison") or {}
    specs = chart_specs(report)
    return (
        _environment()
        .get_template("report.html.j2")
        .render(
            report=report,
            comparison=comparison,
            verdict=comparison.get("verdict") or {},
            recommendation=decision.recommendation(report),
            per_step=decision_charts.per_step_rows(comparison),
            verdict_rows=tables.verdict_rows(comparison),
            rows=tables.comparison_rows(comparison),
            fidelity=tables.fidelity_rows(comparison),
            node_errors=tables.node_error_rows(comparison),
            environment=comparison.get("environment") or {},
            steps=step_summaries(report),
            charts=specs,
            chart_data=_script_json({spec["id"]: spec["config"] for spec in specs}),
            chart_js=Markup(chart_js()),  # our own vendored file
            chart_js_version=CHART_JS_VERSION,
            nonce=nonce,
        )
    )


def render_model_html(report: dict[str, Any], nonce: str = "") -> str:
    """The model's page: the recommendation, the Pareto chart across its jobs, and the jobs table."""
    points = [*report["jobs"], *report["trials"]]
    chart = decision_charts.pareto_chart(points)
    specs = []
    if chart is not None:
        caption = (
            "Every finished job's final model and every search trial; lower left is better. Each job was"
            " timed in its own run, so compare latencies measured on the same machine and load."
        )
        specs.append(
            {"id": "pareto", "title": "Accuracy loss against latency", "caption": caption, "config": chart}
        )
    return (
        _environment()
        .get_template("model_report.html.j2")
        .render(
            report=report,
            jobs=[{**job, "cells": tables.model_job_cells(job)} for job in report["jobs"]],
            charts=specs,
            chart_data=_script_json({spec["id"]: spec["config"] for spec in specs}),
            chart_js=Markup(chart_js()),
            chart_js_version=CHART_JS_VERSION,
            nonce=nonce,
        )
    )
