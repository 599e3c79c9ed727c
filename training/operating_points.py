"""Operating points of the malignancy flag: the threshold for each target sensitivity, and what it costs.

A clinic that wants to miss fewer malignant lesions accepts more false alarms; the
card lists, for each target sensitivity, the threshold chosen on the validation
split (``training.evaluate.choose_malignant_threshold``) with the sensitivity and
specificity it gave on validation and, scored only, on the test split. The
platform lets an administrator serve any of them and tells clinicians, in those
figures, what the flag means.

    python -m training.operating_points models/mobilenetv2-150-v3 --data-dir ../shared/data/ham10000

NumPy only at import time; the command loads Keras to run the model.
"""

from __future__ import annotations

import json
import math

import numpy as np

from training.classes import CLASSES
from training.commands import version_command
from training.malignancy import MALIGNANT_INDICES, SUMMED, TARGET_MALIGNANT_SENSITIVITY, MalignancyScore

# What a clinic can choose from: the shipped default and one step either side.
TARGET_SENSITIVITIES = (0.85, TARGET_MALIGNANT_SENSITIVITY, 0.95)
RULE = (
    "for each target sensitivity, the highest threshold on the malignancy score (the card's malignancy_score; "
    "without one, P(akiec)+P(bcc)+P(mel)) that flags at least that share "
    "of the validation split's akiec, bcc and mel images; sensitivity and specificity measured on validation "
    "(where the threshold was chosen, so sensitivity meets the target by construction) and on test (scored only)"
)


def choose_malignant_threshold(
    labels: np.ndarray,
    probabilities: np.ndarray,
    target_sensitivity: float = TARGET_MALIGNANT_SENSITIVITY,
    score: MalignancyScore = SUMMED,
) -> float:
    """The highest threshold t (score >= t flags) that still flags ``target`` of malignant images.

    Highest, because every lower threshold only costs specificity. Rounded down to
    4 decimals so the stored number flags at least what was measured.
    """
    positive = np.isin(labels, MALIGNANT_INDICES)
    if not positive.any():
        return 0.5
    return math.floor(highest_threshold(score.of(probabilities), positive, target_sensitivity) * 1e4) / 1e4


def highest_threshold(scores: np.ndarray, positive: np.ndarray, target_sensitivity: float) -> float:
    """The highest t for which ``scores >= t`` flags at least ``target_sensitivity`` of the positive rows."""
    ranked = np.sort(scores[positive])[::-1]
    return float(ranked[math.ceil(target_sensitivity * len(ranked)) - 1])


def flag_rates(
    labels: np.ndarray, probabilities: np.ndarray, threshold: float, score: MalignancyScore = SUMMED
) -> dict:
    """Sensitivity (malignant images flagged) and specificity (benign images not flagged) at a threshold."""
    flagged = score.of(probabilities) >= threshold
    malignant = np.isin(labels, MALIGNANT_INDICES)
    return {
        "sensitivity": round(float(flagged[malignant].mean()), 4) if malignant.any() else None,
        "specificity": round(float((~flagged)[~malignant].mean()), 4) if (~malignant).any() else None,
        "malignant_images": int(malignant.sum()),
        "benign_images": int((~malignant).sum()),
    }


def operating_points(
    val_labels: np.ndarray,
    val_probabilities: np.ndarray,
    test_labels: np.ndarray | None = None,
    test_probabilities: np.ndarray | None = None,
    targets: tuple[float, ...] = TARGET_SENSITIVITIES,
    score: MalignancyScore = SUMMED,
) -> dict:
    """The card's ``operating_points`` entry: one point per target, thresholds chosen on validation only."""
    points = []
    for target in targets:
        threshold = choose_malignant_threshold(val_labels, val_probabilities, target, score)
        point = {
            "target_sensitivity": target,
            "threshold": threshold,
            "val": flag_rates(val_labels, val_probabilities, threshold, score),
        }
        if test_labels is not None:
            point["test"] = flag_rates(test_labels, test_probabilities, threshold, score)
        points.append(point)
    return {"rule": RULE, "points": points}


def add_to_card(card: dict, entry: dict) -> dict:
    """The card with its operating points; the served threshold stays the card's own."""
    return {**card, "operating_points": entry}


def main(argv: list[str] | None = None) -> None:
    args = version_command(__doc__, cache=True).parse_args(argv)

    import keras

    from training.card import CARD_FILENAME, MODEL_FILENAME, read_card, write_card
    from training.fit_ood import features_and_probabilities
    from training.train import load_split_arrays

    card = read_card(args.version_dir)
    model = keras.saving.load_model(args.version_dir / MODEL_FILENAME, compile=False)
    arrays = load_split_arrays(
        args.data_dir, args.split_file, card.input_size, args.cache_dir or None, ("val", "test"), card.geometry
    )
    order = [card.classes.index(code) for code in CLASSES]
    probabilities = {
        name: features_and_probabilities(model, images)[1][:, order] for name, (images, _, _) in arrays.items()
    }
    entry = operating_points(
        arrays["val"][1], probabilities["val"], arrays["test"][1], probabilities["test"], score=card.malignancy
    )
    raw = json.loads((args.version_dir / CARD_FILENAME).read_text(encoding="utf-8"))
    write_card(args.version_dir, add_to_card(raw, entry))
    print(json.dumps(entry, indent=2))


if __name__ == "__main__":
    main()
