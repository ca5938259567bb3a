"""The paired bootstrap and the flipped rows (mlci.review.noise), on data with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from mlci.metrics import quality, regression_quality
from mlci.review.noise import RowScores, compare, flips, mcnemar

CLASSES = ("a", "b", "c")


def classifier(truth: np.ndarray, proba: np.ndarray) -> RowScores:
    return RowScores(truth, proba.argmax(axis=1), proba, CLASSES)


def labels_only(truth: np.ndarray, pred: np.ndarray) -> RowScores:
    return RowScores(truth, pred, None, CLASSES)


def test_point_estimates_are_the_evaluate_stage_metrics() -> None:
    """With every row drawn once, the vectorised metrics are exactly mlci.metrics'."""
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, 300)
    logits = rng.normal(size=(300, 3)) + 1.5 * np.eye(3)[truth]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    proba = proba.round(3)  # ties in the scores: the AUC counts them half, as sklearn does
    proba /= proba.sum(axis=1, keepdims=True)
    other = np.roll(proba, 1, axis=0)
    result = compare(classifier(truth, other), classifier(truth, proba), seed=1, samples=200)
    expected = quality(np.array(CLASSES)[truth], proba, list(CLASSES))
    for metric in ("accuracy", "balanced_accuracy", "f1_macro", "log_loss", "roc_auc_ovr"):
        assert result[metric].head == pytest.approx(expected[metric], abs=2e-6), metric

    y = rng.normal(size=200) * 3
    pred = y + rng.normal(size=200)
    result = compare(RowScores(y, y * 0), RowScores(y, pred), seed=1, samples=200)
    expected = regression_quality(y, pred)
    for metric in ("rmse", "mae", "r2"):
        assert result[metric].head == pytest.approx(expected[metric], abs=2e-6), metric


def test_the_interval_covers_a_known_difference_about_95_percent_of_the_time() -> None:
    """Each row: base right with probability 0.80, this branch 0.85 (correlated): the true
    change in accuracy is +0.05. Over 200 simulated test sets of 300 rows the 95% interval must
    cover it about 95% of the time (binomial noise of 200 trials: 89-99%)."""
    rng = np.random.default_rng(42)
    truth_change, covered, trials = 0.05, 0, 200
    for trial in range(trials):
        n = 300
        truth = rng.integers(0, 3, n)
        u = rng.random(n)  # shared difficulty: the pairing the bootstrap must keep
        base_right, head_right = u < 0.80, u < 0.85
        wrong = (truth + 1) % 3
        base = labels_only(truth, np.where(base_right, truth, wrong))
        head = labels_only(truth, np.where(head_right, truth, wrong))
        c = compare(base, head, seed=trial, samples=500)["accuracy"]
        covered += c.low <= truth_change <= c.high
    assert 0.89 <= covered / trials <= 0.99, covered


def test_one_flipped_row_of_86_is_within_noise_and_twenty_are_not() -> None:
    truth = np.arange(86) % 3
    base = labels_only(truth, truth.copy())
    one = truth.copy()
    one[5] = (truth[5] + 1) % 3
    c = compare(base, labels_only(truth, one), seed=42)
    assert c["accuracy"].change == pytest.approx(-1 / 86)
    assert c["accuracy"].low < 0 <= c["accuracy"].high  # the interval reaches no change
    assert c["accuracy"].verdict == "within noise"
    f = flips(base, labels_only(truth, one))
    assert (f.worse, f.better, f.p_value) == (1, 0, 1.0)

    many = truth.copy()
    many[:20] = (truth[:20] + 1) % 3
    c = compare(base, labels_only(truth, many), seed=42)
    assert c["accuracy"].high < 0 and c["accuracy"].verdict == "worse"
    f = flips(base, labels_only(truth, many))
    assert f.worse == 20 and f.p_value == pytest.approx(2 * 0.5**20)


def test_identical_models_are_unchanged_and_the_seed_fixes_the_interval() -> None:
    truth = np.arange(60) % 3
    pred = np.where(np.arange(60) % 7 == 0, (truth + 1) % 3, truth)
    same = compare(labels_only(truth, pred), labels_only(truth, pred), seed=3)
    assert {c.verdict for c in same.values()} == {"unchanged"}
    other = pred.copy()
    other[:10] = truth[:10]
    first = compare(labels_only(truth, pred), labels_only(truth, other), seed=3)
    again = compare(labels_only(truth, pred), labels_only(truth, other), seed=3)
    assert first == again


def test_regression_a_worse_model_and_the_rows_whose_error_grew() -> None:
    rng = np.random.default_rng(7)
    y = rng.normal(size=400) * 10
    base = RowScores(y, y + rng.normal(size=400))
    head = RowScores(y, y + 3 * rng.normal(size=400))  # three times the error
    c = compare(base, head, seed=42)
    assert c["rmse"].verdict == "worse" and c["rmse"].low > 0
    assert c["mae"].verdict == "worse"
    assert c["r2"].verdict == "worse" and c["r2"].high < 0
    f = flips(base, head)
    assert f.p_value is None and f.worse + f.better == 400
    assert 0.6 < f.worse / 400 < 0.9  # most rows' error grew; not all (noise)
    # Another model exactly as good on the whole (the base's errors, on other rows): its
    # rows differ, its metrics do not: within noise, not "unchanged".
    peer = RowScores(y, y + rng.permutation(base.pred - y))
    assert {compare(base, peer, seed=1)[m].verdict for m in ("rmse", "mae", "r2")} == {
        "within noise"
    }


def test_mcnemar_is_the_exact_two_sided_binomial_test() -> None:
    assert mcnemar(0, 0) == 1.0
    assert mcnemar(8, 0) == pytest.approx(2 * 0.5**8)
    assert mcnemar(3, 3) == 1.0
