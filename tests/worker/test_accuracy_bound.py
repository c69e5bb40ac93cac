"""Per-sample scores and the drop's upper confidence bound, on real digits predictions."""

from __future__ import annotations

import numpy as np
import pytest

from engine.evaluate import accuracy as acc
from tests import model_zoo


@pytest.mark.parametrize("metric", ["top1", "top5", "mse", "mae", "cosine"])
def test_per_sample_scores_average_to_the_score(metric: str) -> None:
    rng = np.random.default_rng(0)
    outputs = rng.normal(size=(50, 10)).astype(np.float32)
    labels = rng.integers(0, 10, 50) if metric.startswith("top") else rng.normal(size=(50, 10))
    scores = acc.per_sample(metric, outputs, labels)
    assert scores.shape == (50,)
    assert float(np.mean(scores)) == pytest.approx(acc.score(metric, outputs, labels))


def test_a_candidate_flipping_answers_both_ways_has_a_bound_above_its_zero_drop() -> None:
    _, labels = model_zoo.digits()
    labels = labels[:360]
    baseline = np.ones(360)
    same = acc.drop_upper_bound("top1", baseline, baseline.copy())
    assert same == 0.0
    # Six answers lost and six gained: the measured drop is zero, the loss on new data may not be.
    flipped = baseline.copy()
    flipped[:6] = 0.0
    baseline_with_misses = baseline.copy()
    baseline_with_misses[6:12] = 0.0
    flipped[6:12] = 1.0
    bound = acc.drop_upper_bound("top1", baseline_with_misses, flipped)
    expected = 1.645 * np.std(np.r_[np.ones(6), -np.ones(6), np.zeros(348)], ddof=1) / np.sqrt(360)
    assert bound == pytest.approx(expected) and bound > 0.01
    # For an error metric a larger candidate error is the loss.
    assert acc.drop_upper_bound("mse", np.zeros(4), np.full(4, 0.5)) == pytest.approx(0.5)


def test_a_sequence_labeller_counts_samples_not_positions() -> None:
    outputs = np.zeros((3, 4, 5), np.float32)
    outputs[..., 1] = 1.0
    labels = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 0, 0]])
    assert acc.per_sample("top1", outputs, labels).tolist() == [1.0, 0.5, 0.0]
