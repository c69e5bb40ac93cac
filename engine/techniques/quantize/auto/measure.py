"""How quantize.auto measures a candidate: its metric on the evaluation set, its speed against the original.

Latency is measured the way engine.evaluate measures a job: the original and the candidate run
interleaved, after warm-up, on the same batch, so each trial's speedup is taken under the same machine
load as its own baseline; trials are ranked by that speedup rather than by raw latencies taken minutes
apart.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from engine.contract import TechniqueError
from engine.evaluate import accuracy as acc
from engine.evaluate.benchmark import percentiles, time_pair
from engine.evaluate.describe import model_size_bytes
from engine.evaluate.inputs import first_samples, fixed_batch, load_dataset, sample_count, take
from engine.evaluate.sessions import CHUNK, feeds_for, first_output, make_session
from engine.techniques.quantize.auto.trials import Measurement
from service.errors import InvalidParams

TIMING_BATCH = 8
WARMUP_RUNS = 3


class JudgeSettings(Protocol):
    """The parameters a judge reads: quantize.auto's and optimize's both have them."""

    @property
    def max_eval_samples(self) -> int: ...
    @property
    def metric(self) -> str | None: ...
    @property
    def drop_type(self) -> str: ...
    @property
    def max_accuracy_drop(self) -> float: ...
    @property
    def timing_budget_s(self) -> float: ...


class TrialJudge:
    """Holds the evaluation data, the original's outputs and session; measures one candidate at a time."""

    def __init__(
        self,
        model_path: Path,
        eval_path: Path,
        signature: dict[str, Any],
        params: JudgeSettings,
        threads: int,
        batch: int = TIMING_BATCH,
    ) -> None:
        data = load_dataset(eval_path, signature)
        keep = slice(0, params.max_eval_samples)
        self.arrays = first_samples(data.arrays, params.max_eval_samples)
        self.params = params
        self.threads = threads
        fixed = fixed_batch(signature)
        self.chunk = fixed or CHUNK
        self.timing_feeds = take(self.arrays, 0, fixed or batch)
        self.baseline = make_session(model_path, threads)
        outputs = first_output(self.baseline, self.arrays, self.chunk)
        labels = None if data.labels is None else data.labels[keep]
        self.against = "labels" if labels is not None else "float model outputs"
        self.metric, self.targets = _targets(params.metric, labels, outputs)
        self.baseline_scores = acc.per_sample(self.metric, outputs, self.targets)
        self.baseline_accuracy = float(np.mean(self.baseline_scores))

    @property
    def samples(self) -> int:
        """How many evaluation samples each trial is scored on."""
        return sample_count(self.arrays)

    @property
    def relative_undefined(self) -> bool:
        """A relative drop needs a non-zero baseline score; without one the drop is taken as absolute."""
        return self.params.drop_type == "relative" and self.baseline_accuracy == 0

    def measure(self, candidate_path: Path) -> Measurement:
        """Score and time one candidate against the original."""
        session = make_session(candidate_path, self.threads)
        scores = acc.per_sample(self.metric, first_output(session, self.arrays, self.chunk), self.targets)
        score = float(np.mean(scores))
        drop = acc.accuracy_drop(self.metric, self.baseline_accuracy, score)
        bound = acc.drop_upper_bound(self.metric, self.baseline_scores, scores)
        if self.params.drop_type == "relative" and not self.relative_undefined:
            drop /= abs(self.baseline_accuracy)
            bound /= abs(self.baseline_accuracy)
        runs = [partial(s.run, None, feeds_for(s, self.timing_feeds)) for s in (self.baseline, session)]
        timing = time_pair(*runs, warmup_runs=WARMUP_RUNS, budget_s=self.params.timing_budget_s)
        baseline_p50 = percentiles(timing.baseline_ms)["p50"]
        candidate = percentiles(timing.candidate_ms)
        candidate_p50 = candidate["p50"]
        return Measurement(
            accuracy=score,
            accuracy_drop=drop,
            within_budget=acc.within_budget(drop, self.params.max_accuracy_drop),
            latency_ms=candidate_p50,
            speedup=baseline_p50 / candidate_p50,
            size_bytes=model_size_bytes(candidate_path),
            latency_percentiles_ms=dict(candidate),
            accuracy_drop_bound=bound,
        )


def _targets(metric: str | None, labels: np.ndarray | None, outputs: np.ndarray) -> tuple[str, np.ndarray]:
    """The metric and what it is scored against: the labels, else the float model's own outputs."""
    if labels is not None:
        return acc.check_metric(metric or acc.default_metric(labels)), labels
    # (samples, classes) scores; wider outputs (maps, sequences, detector heads) are compared whole:
    # top-1 over a detector's last axis (its anchors) flips on noise and rejected every int8 trial.
    classifier = outputs.ndim == 2 and outputs.shape[-1] >= 2
    chosen = acc.check_metric(metric or ("top1" if classifier else "cosine"))
    if chosen in ("top1", "top5"):
        if not classifier:
            raise TechniqueError(
                InvalidParams,
                f"{chosen} without labels compares predicted classes, but the model's first output has shape"
                f" {list(outputs.shape)}; use mse or mae, or an evaluation dataset with labels",
            )
        return chosen, np.argmax(outputs, axis=-1)
    return chosen, outputs
