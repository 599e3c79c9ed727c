"""Refitting a version's malignancy score: thresholds chosen on validation, test only scored, a new version."""

from __future__ import annotations

import numpy as np
import pytest

from tests.tiny_model import save_tiny_version, tiny_card
from tests.training.test_malignancy import confusable
from training.calibrate import softmax
from training.card import CARD_FILENAME, MODEL_FILENAME, parse_card, read_card
from training.evaluate import evaluate_logits
from training.export import FITTED_FLAG, SUMMED_FLAG
from training.fit_malignancy import derive_version, refit_card
from training.malignancy import MALIGNANT_INDICES


def card_with_metrics() -> dict:
    untouched = {"balanced_accuracy": 0.7, "malignant_sensitivity_at_threshold": 0.5}
    return {
        **tiny_card("v5"),
        "metrics": {"how_measured": f"flag when {SUMMED_FLAG}.", "val": dict(untouched), "test": dict(untouched)},
    }


def sensitivity(card: dict, labels: np.ndarray, probabilities: np.ndarray) -> float:
    typed = parse_card(card)
    flagged = typed.malignancy.of(probabilities) >= typed.malignant_threshold
    return float(flagged[np.isin(labels, MALIGNANT_INDICES)].mean())


def test_the_refitted_card_flags_the_target_share_of_validation_with_its_own_score():
    val, test = confusable(1000, seed=3), confusable(1000, seed=4)

    card = refit_card(card_with_metrics(), val, test, target_sensitivity=0.95)

    assert card["malignancy_score"]["kind"] == "logistic"
    assert card["thresholds"]["target_sensitivity"] == 0.95
    assert sensitivity(card, *val) >= 0.95
    assert card["metrics"]["val"]["malignant_sensitivity_at_threshold"] == pytest.approx(sensitivity(card, *val))
    assert card["metrics"]["test"]["malignant_sensitivity_at_threshold"] == pytest.approx(sensitivity(card, *test))
    # The network's own figures stay; the served threshold is one of the operating points.
    assert card["metrics"]["val"]["balanced_accuracy"] == 0.7
    points = {point["target_sensitivity"]: point["threshold"] for point in card["operating_points"]["points"]}
    assert points[0.95] == card["thresholds"]["malignant"]
    assert card["metrics"]["how_measured"] == f"flag when {FITTED_FLAG}."


def test_the_test_split_never_moves_the_score_or_the_threshold():
    val = confusable(1000, seed=5)

    one = refit_card(card_with_metrics(), val, confusable(500, seed=6))
    other = refit_card(card_with_metrics(), val, confusable(500, seed=7))

    assert one["malignancy_score"] == other["malignancy_score"]
    assert one["thresholds"] == other["thresholds"]
    assert one["metrics"]["test"] != other["metrics"]["test"]


def test_training_fits_the_score_on_validation_and_the_card_serves_it():
    from training.export import make_card

    labels, probabilities = confusable(900, seed=8)
    logits = np.log(probabilities)

    evaluation = evaluate_logits(logits, labels, logits, labels)

    assert evaluation["malignancy_score"]["kind"] == "logistic"
    served = make_card(
        "v-new", "2026-01-01T00:00:00Z", architecture="tiny", keras_version="3", input_size=(150, 150),
        geometry="squash", evaluation=evaluation, how_measured="", compared_with={}, trained_on={},
        recipe={"loss_weights": "none"},
    )  # fmt: skip
    calibrated = softmax(logits, evaluation["temperature"])
    assert sensitivity(served, labels, calibrated) >= 0.90
    assert evaluation["val"]["malignant_sensitivity_at_threshold"] == pytest.approx(
        sensitivity(served, labels, calibrated)
    )


def test_a_derived_version_keeps_the_network_under_a_new_name(tmp_path):
    source = save_tiny_version(tmp_path, "tiny-v4")

    card = derive_version(source, tmp_path / "tiny-v5")

    assert card["version"] == "tiny-v5"
    assert card["derived_from"]["version"] == "tiny-v4"
    assert (tmp_path / "tiny-v5" / MODEL_FILENAME).read_bytes() == (source / MODEL_FILENAME).read_bytes()
    assert read_card(source).version == "tiny-v4"  # the source's card is left as it was
    assert not (tmp_path / "tiny-v5" / CARD_FILENAME).exists()  # written once the score is fitted
    with pytest.raises(FileExistsError, match="tiny-v5"):
        derive_version(source, tmp_path / "tiny-v5")
