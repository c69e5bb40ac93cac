"""Per-sample scores and the drop's upper confidence bound."""

from __future__ import annotations

import numpy as np
import pytest

from engine.evaluate import accuracy as acc


def _references(outputs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Each metric written out directly, independently of engine.evaluate.accuracy."""
    top5 = np.argsort(-outputs, axis=1)[:, :5]
    cosines = np.sum(outputs * labels, axis=1) / (
        np.linalg.norm(outputs, axis=1) * np.linalg.norm(labels, axis=1)
    )
    return {
        "mse": float(np.mean((outputs - labels) ** 2)),
        "mae": float(np.mean(np.abs(outputs - labels))),
        "cosine": float(np.mean(cosines)),
        "top1": float(np.mean(outputs.argmax(1) == labels.argmax(1))),
        "top5": float(np.mean([label in row for label, row in zip(labels.argmax(1), top5, strict=True)])),
    }


@pytest.mark.parametrize("metric", ["top1", "top5", "mse", "mae", "cosine"])
def test_per_sample_scores_average_to_the_metric_written_out(metric: str) -> None:
    rng = np.random.default_rng(0)
    outputs, targets = rng.normal(size=(50, 10)), rng.normal(size=(50, 10))
    labels = targets.argmax(1) if metric.startswith("top") else targets
    scores = acc.per_sample(metric, outputs, labels)
    assert scores.shape == (50,)
    assert float(np.mean(scores)) == pytest.approx(_references(outputs, targets)[metric])


def test_a_scalar_output_and_no_samples_still_score() -> None:
    assert acc.score("mse", np.array(3.0), np.array([1.0])) == 4.0
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        assert np.isnan(acc.score("mae", np.zeros((0, 3)), np.zeros((0, 3))))


def test_a_candidate_flipping_answers_both_ways_has_a_bound_above_its_zero_drop() -> None:
    baseline = np.ones(360)
    # Identical answers: the bound is what one flipped answer in 360 would allow, not zero.
    assert acc.drop_upper_bound("top1", baseline, baseline.copy()) == pytest.approx(1.645 / 360)
    # Six answers lost and six gained: the measured drop is zero, the loss on new data may not be.
    baseline_with_misses = baseline.copy()
    baseline_with_misses[6:12] = 0.0
    flipped = baseline.copy()
    flipped[:6] = 0.0
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
