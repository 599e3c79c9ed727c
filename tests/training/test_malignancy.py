"""The malignancy score a card names: the plain sum, or a logistic score fitted on validation."""

from __future__ import annotations

import numpy as np
import pytest

from tests.tiny_model import tiny_card
from training.card import CardError, parse_card
from training.classes import CLASSES
from training.malignancy import (
    FEATURES,
    MIN_PICTURES_PER_SIDE,
    SUMMED,
    MalignancyScoreError,
    fit,
    from_card_entry,
    summed,
)

MEL, NV, BKL, BCC = (CLASSES.index(code) for code in ("mel", "nv", "bkl", "bcc"))


def confusable(n: int, seed: int):
    """Pictures where P(mel) alone does not tell: a benign keratosis-like remainder goes with
    melanoma far more often than a nevus-like one, which the sum cannot see and a fitted score can."""
    rng = np.random.default_rng(seed)
    p_mel = rng.uniform(0.05, 0.6, n)
    keratosis_like = rng.random(n) < 0.5
    probabilities = np.full((n, len(CLASSES)), 0.01)
    probabilities[:, MEL] = p_mel
    probabilities[np.arange(n), np.where(keratosis_like, BKL, NV)] = 1 - p_mel - 0.06
    chance = np.where(keratosis_like, 0.7, 0.1) * (0.5 + p_mel)
    labels = np.where(rng.random(n) < chance, MEL, np.where(keratosis_like, BKL, NV))
    return labels, probabilities


def auc(labels, scores):
    from sklearn.metrics import roc_auc_score

    return roc_auc_score(np.isin(labels, [0, 1, MEL]), scores)


def test_without_an_entry_the_score_is_the_three_malignant_classes_summed():
    probabilities = np.array([[0.1, 0.2, 0.05, 0.05, 0.3, 0.25, 0.05]])

    assert parse_card(tiny_card("v")).malignancy is SUMMED
    assert SUMMED.of(probabilities) == pytest.approx([0.6])
    assert SUMMED.of_one(dict(zip(CLASSES, probabilities[0], strict=True))) == pytest.approx(0.6)


def test_a_fitted_score_reads_the_remainder_the_sum_ignores_and_holds_on_new_pictures():
    labels, probabilities = confusable(1200, seed=0)
    new_labels, new_probabilities = confusable(1200, seed=1)

    score = fit(labels, probabilities, "generated validation")

    assert score.kind == "logistic"
    values = score.of(new_probabilities)
    assert ((values > 0) & (values < 1)).all()
    assert auc(new_labels, values) > auc(new_labels, summed(new_probabilities)) + 0.05


def test_the_card_entry_gives_back_the_same_scores():
    labels, probabilities = confusable(600, seed=2)
    score = fit(labels, probabilities, "generated validation")

    card = parse_card({**tiny_card("v5"), "malignancy_score": score.card_entry()})

    assert card.malignancy.kind == "logistic"
    assert card.malignancy.fitted_on == "generated validation"
    np.testing.assert_allclose(card.malignancy.of(probabilities), score.of(probabilities), atol=1e-5)
    assert card.malignancy.description != SUMMED.description


def test_too_few_malignant_pictures_to_learn_from_keep_the_sum():
    labels = np.array([MEL] * (MIN_PICTURES_PER_SIDE - 1) + [NV] * 200)
    probabilities = np.tile(np.full(len(CLASSES), 1 / len(CLASSES)), (len(labels), 1))

    assert fit(labels, probabilities, "a small clinic's pictures") is SUMMED
    assert SUMMED.card_entry() is None


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"kind": "neural"}, "malignancy_score.kind"),
        ({"features": ["log_p_mel"]}, "malignancy_score.features"),
        ({"weights": [0.1] * 3}, "malignancy_score.weights"),
        ({"weights": [float("nan")] * len(FEATURES)}, "malignancy_score.weights"),
        ({"intercept": "high"}, "malignancy_score.intercept"),
    ],
)
def test_a_card_with_a_bad_score_is_refused_naming_the_field(change, named):
    entry = {"kind": "logistic", "features": list(FEATURES), "weights": [0.1] * len(FEATURES), "intercept": 0.0}
    with pytest.raises(MalignancyScoreError, match=named):
        from_card_entry({**entry, **change})
    with pytest.raises(CardError, match=named):
        parse_card({**tiny_card("v"), "malignancy_score": {**entry, **change}})


def test_a_card_names_the_sensitivity_its_threshold_was_chosen_for():
    assert parse_card(tiny_card("v")).target_sensitivity == 0.90
    assert (
        parse_card({**tiny_card("v"), "thresholds": {"malignant": 0.2, "target_sensitivity": 0.95}}).target_sensitivity
        == 0.95
    )
    with pytest.raises(CardError, match="thresholds.target_sensitivity"):
        parse_card({**tiny_card("v"), "thresholds": {"malignant": 0.2, "target_sensitivity": 1.5}})


def test_the_fitted_score_is_the_one_its_card_entry_serves_exactly():
    labels, probabilities = confusable(600, seed=4)
    score = fit(labels, probabilities, "generated validation")

    assert from_card_entry(score.card_entry()) == score  # thresholds chosen on it hold when served
