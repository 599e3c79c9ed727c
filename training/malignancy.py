"""The malignancy score: one number per picture, from the seven class probabilities, that the flag thresholds.

Two kinds, named by the card's ``malignancy_score`` entry:

- ``sum`` (no entry: every card before v5): P(akiec) + P(bcc) + P(mel).
- ``logistic``: a logistic regression on the seven log probabilities and the logit of that
  sum, fitted on the validation split's calibrated probabilities. The sum treats a picture
  at P(mel) 0.3 / P(nv) 0.7 like one at P(mel) 0.3 / P(bkl) 0.7; the validation split says a
  nevus-like remainder means less danger than a keratosis-like one, and the regression
  learns how much. Its output is the probability of a malignant or pre-malignant lesion at
  the validation split's mix (about one picture in five), not a class probability.

Thresholds, operating points and the flag's figures are always measured on the score the
card names, so a served version and its card never disagree. NumPy only at import time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from training.classes import CLASSES, MALIGNANT_CLASSES

MALIGNANT_INDICES = [CLASSES.index(code) for code in CLASSES if code in MALIGNANT_CLASSES]
SUM, LOGISTIC = "sum", "logistic"
# The flag's default: the platform favours catching malignancy over specificity. A card may
# name another (``thresholds.target_sensitivity``), chosen on the shifted validation pictures.
TARGET_MALIGNANT_SENSITIVITY = 0.90
FEATURES = tuple(f"log_p_{code}" for code in CLASSES) + ("logit_malignant_sum",)
# Strong L2 (scikit-learn's C): eight weights on a few hundred malignant pictures; weaker
# penalties (C 0.1, 1) cross-fitted lower specificity at the 95 % point (docs/MODEL_CARD.md).
REGULARISATION_C = 0.01
MIN_PICTURES_PER_SIDE = 30  # fewer malignant (or benign) validation pictures: keep the sum
WEIGHT_DECIMALS = 6
EPSILON = 1e-6  # probabilities are clipped here before the logs: a softmax can round to 0 or 1


class MalignancyScoreError(ValueError):
    """A card's ``malignancy_score`` entry does not describe a score this code can compute."""


def summed(probabilities: np.ndarray) -> np.ndarray:
    """P(akiec) + P(bcc) + P(mel) of (N, 7) probabilities in ``CLASSES`` order, clipped to [0, 1]."""
    return np.clip(probabilities[:, MALIGNANT_INDICES].sum(axis=1), 0.0, 1.0)


def features(probabilities: np.ndarray) -> np.ndarray:
    """(N, 8): the seven log probabilities and the logit of the malignant sum (``FEATURES``)."""
    clipped = np.clip(probabilities, EPSILON, 1.0)
    total = np.clip(summed(probabilities), EPSILON, 1.0 - EPSILON)
    return np.column_stack([np.log(clipped), np.log(total / (1.0 - total))])


@dataclass(frozen=True)
class MalignancyScore:
    kind: str = SUM
    weights: tuple[float, ...] = ()
    intercept: float = 0.0
    fitted_on: str | None = None

    def of(self, probabilities: np.ndarray) -> np.ndarray:
        """(N,) scores in [0, 1] of (N, 7) probabilities in ``CLASSES`` order."""
        probabilities = np.asarray(probabilities, dtype=np.float64)
        if self.kind == SUM:
            return summed(probabilities)
        z = features(probabilities) @ np.asarray(self.weights) + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def of_one(self, by_class: dict[str, float]) -> float:
        """The score of one picture's probabilities, keyed by class code."""
        return float(self.of(np.array([[by_class.get(code, 0.0) for code in CLASSES]]))[0])

    @property
    def description(self) -> str:
        """What the number means, in words a clinician's page can show."""
        if self.kind == SUM:
            return "the probability the model gives to the three malignant or pre-malignant classes together"
        return (
            "the probability of a malignant or pre-malignant lesion, read from all seven class probabilities "
            "by a logistic regression fitted on the validation split"
        )

    def card_entry(self) -> dict | None:
        """The card's ``malignancy_score``; None for the sum (a card without the entry means the sum)."""
        if self.kind == SUM:
            return None
        return {
            "kind": LOGISTIC,
            "features": list(FEATURES),
            "weights": [round(w, WEIGHT_DECIMALS) for w in self.weights],
            "intercept": round(self.intercept, WEIGHT_DECIMALS),
            "fitted_on": self.fitted_on,
            "meaning": self.description,
        }


SUMMED = MalignancyScore()


def from_card_entry(entry) -> MalignancyScore:
    """The score a card's ``malignancy_score`` entry names (None: the sum); raises naming what is wrong."""
    if entry is None:
        return SUMMED
    if not isinstance(entry, dict):
        raise MalignancyScoreError("'malignancy_score' must be an object")
    kind = entry.get("kind")
    if kind == SUM:
        return SUMMED
    if kind != LOGISTIC:
        raise MalignancyScoreError(f"'malignancy_score.kind' must be {SUM!r} or {LOGISTIC!r}, not {kind!r}")
    if entry.get("features") != list(FEATURES):
        raise MalignancyScoreError(f"'malignancy_score.features' must be {list(FEATURES)}")
    weights, intercept = entry.get("weights"), entry.get("intercept")
    if not isinstance(weights, list) or len(weights) != len(FEATURES) or not all(_finite(w) for w in weights):
        raise MalignancyScoreError(f"'malignancy_score.weights' must be {len(FEATURES)} finite numbers")
    if not _finite(intercept):
        raise MalignancyScoreError("'malignancy_score.intercept' must be a finite number")
    return MalignancyScore(LOGISTIC, tuple(float(w) for w in weights), float(intercept), entry.get("fitted_on"))


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def fit(labels: np.ndarray, probabilities: np.ndarray, fitted_on: str) -> MalignancyScore:
    """A logistic score fitted on these (validation) labels and calibrated probabilities; the sum
    when either side has fewer than ``MIN_PICTURES_PER_SIDE`` pictures to learn from."""
    from sklearn.linear_model import LogisticRegression

    malignant = np.isin(labels, MALIGNANT_INDICES)
    if min(malignant.sum(), (~malignant).sum()) < MIN_PICTURES_PER_SIDE:
        return SUMMED
    regression = LogisticRegression(C=REGULARISATION_C, max_iter=5000)
    regression.fit(features(np.asarray(probabilities, dtype=np.float64)), malignant)
    # Rounded as the card stores them, so thresholds chosen on this score are the served score's.
    weights = tuple(round(float(w), WEIGHT_DECIMALS) for w in regression.coef_[0])
    return MalignancyScore(LOGISTIC, weights, round(float(regression.intercept_[0]), WEIGHT_DECIMALS), fitted_on)
