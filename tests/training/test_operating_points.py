"""The card's operating points: a threshold per target sensitivity, chosen on validation, scored on test."""

from __future__ import annotations

import numpy as np

from training.classes import CLASSES
from training.malignancy import summed as malignancy_scores
from training.operating_points import flag_rates, operating_points

MEL, NV = CLASSES.index("mel"), CLASSES.index("nv")


def probabilities_for(scores: np.ndarray) -> np.ndarray:
    """Rows whose malignancy score (all on mel) is `scores`, the rest on nv."""
    rows = np.zeros((len(scores), len(CLASSES)))
    rows[:, MEL], rows[:, NV] = scores, 1 - scores
    return rows


def split(seed: int, n: int = 400):
    rng = np.random.default_rng(seed)
    labels = np.where(rng.random(n) < 0.3, MEL, NV)
    scores = np.clip(np.where(labels == MEL, rng.normal(0.7, 0.2, n), rng.normal(0.3, 0.2, n)), 0, 1)
    return labels, probabilities_for(scores)


def test_each_target_gets_the_highest_threshold_that_reaches_it_on_validation():
    labels, probabilities = split(seed=0)

    entry = operating_points(labels, probabilities, targets=(0.85, 0.90, 0.95))

    thresholds = [point["threshold"] for point in entry["points"]]
    assert thresholds == sorted(thresholds, reverse=True)  # more sensitivity, lower threshold
    for point in entry["points"]:
        assert point["val"]["sensitivity"] >= point["target_sensitivity"]
        # A threshold one step higher would miss the target: it is the highest that reaches it.
        scores = malignancy_scores(probabilities)[labels == MEL]
        assert (scores >= point["threshold"] + 0.001).mean() < point["target_sensitivity"]


def test_the_test_split_is_scored_but_never_moves_a_threshold():
    val_labels, val_probabilities = split(seed=1)
    test_labels, test_probabilities = split(seed=2)
    other_labels, other_probabilities = split(seed=3)

    with_test = operating_points(val_labels, val_probabilities, test_labels, test_probabilities)
    with_other = operating_points(val_labels, val_probabilities, other_labels, other_probabilities)

    assert [p["threshold"] for p in with_test["points"]] == [p["threshold"] for p in with_other["points"]]
    assert with_test["points"][0]["test"] != with_other["points"][0]["test"]
    assert "test" not in operating_points(val_labels, val_probabilities)["points"][0]


def test_flag_rates_count_malignant_images_flagged_and_benign_images_left_alone():
    labels = np.array([MEL, MEL, MEL, MEL, NV, NV, NV, NV, NV])
    probabilities = probabilities_for(np.array([0.9, 0.6, 0.4, 0.1, 0.8, 0.3, 0.2, 0.1, 0.05]))

    rates = flag_rates(labels, probabilities, threshold=0.35)

    assert rates == {"sensitivity": 0.75, "specificity": 0.8, "malignant_images": 4, "benign_images": 5}
