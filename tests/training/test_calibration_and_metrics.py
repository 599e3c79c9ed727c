"""Temperature scaling, calibration error, the malignancy threshold and the metrics."""

from __future__ import annotations

import numpy as np

from training.calibrate import expected_calibration_error, fit_temperature, softmax
from training.classes import CLASSES
from training.evaluate import choose_malignant_threshold, compute_metrics, majority_baseline
from training.malignancy import summed as malignancy_scores
from training.train import class_weights


def _sample_labels(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.array([rng.choice(len(CLASSES), p=p) for p in probabilities])


def test_temperature_scaling_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, (4000, len(CLASSES)))
    labels = _sample_labels(softmax(true_logits), rng)
    overconfident = true_logits * 3.0
    assert abs(fit_temperature(overconfident, labels) - 3.0) < 0.3


def test_temperature_scaling_lowers_the_calibration_error_without_changing_predictions():
    rng = np.random.default_rng(1)
    true_logits = rng.normal(0, 2, (4000, len(CLASSES)))
    labels = _sample_labels(softmax(true_logits), rng)
    logits = true_logits * 2.5
    temperature = fit_temperature(logits, labels)
    before = expected_calibration_error(softmax(logits), labels)
    after = expected_calibration_error(softmax(logits, temperature), labels)
    assert after < before / 2
    np.testing.assert_array_equal(softmax(logits).argmax(1), softmax(logits, temperature).argmax(1))


def test_a_perfect_confident_classifier_has_no_calibration_error():
    labels = np.arange(len(CLASSES)).repeat(3)
    assert expected_calibration_error(np.eye(len(CLASSES))[labels], labels) == 0.0


def test_the_threshold_flags_at_least_90_percent_of_malignant_images():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, len(CLASSES), 500)
    probabilities = softmax(rng.normal(0, 1, (500, len(CLASSES))))
    threshold = choose_malignant_threshold(labels, probabilities)
    malignant = np.isin(labels, [CLASSES.index(c) for c in ("akiec", "bcc", "mel")])
    flagged = malignancy_scores(probabilities) >= threshold
    assert flagged[malignant].mean() >= 0.90
    # ... and it is the highest such threshold: a little higher drops below 90 %.
    assert (malignancy_scores(probabilities)[malignant] >= threshold + 0.01).mean() < 0.90


def test_metrics_of_a_perfect_model():
    labels = np.arange(len(CLASSES)).repeat(4)
    metrics = compute_metrics(labels, np.eye(len(CLASSES))[labels], malignant_threshold=0.5)
    assert metrics["balanced_accuracy"] == metrics["macro_f1"] == metrics["accuracy"] == 1.0
    assert metrics["melanoma_recall_at_threshold"] == 1.0
    assert metrics["per_class"]["mel"]["roc_auc"] == 1.0
    assert np.trace(metrics["confusion_matrix"]) == len(labels)


def test_the_majority_baseline_has_balanced_accuracy_one_seventh():
    train = np.array([CLASSES.index("nv")] * 20 + list(range(len(CLASSES))))
    held_out = np.arange(len(CLASSES)).repeat(5)
    baseline = majority_baseline(train, held_out, held_out)
    assert baseline["predicts"] == "nv"
    assert abs(baseline["test"]["balanced_accuracy"] - 1 / 7) < 1e-9


def test_balanced_class_weights_give_every_class_the_same_total_weight():
    labels = np.array([0] * 70 + [1] * 20 + [2] * 5 + [3, 4, 5, 6] * 5)
    weights = class_weights(labels, "balanced")
    totals = np.bincount(labels, weights=weights[labels])
    np.testing.assert_allclose(totals, totals[0])
    assert abs(weights[labels].mean() - 1.0) < 1e-9
