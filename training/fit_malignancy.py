"""Fit a version's malignancy score on validation, and rewrite what the card says of the flag.

The score (``training.malignancy``) is fitted on the validation split's calibrated
probabilities; the thresholds of every operating point are chosen again on it, on
validation; the flag's figures are measured again on validation and, scored only, on
test. The network, its calibration and everything else on the card stay as they are.

    python -m training.fit_malignancy models/mobilenetv2-150-v5 --data-dir ../shared/data/ham10000 \\
        --derive-from models/mobilenetv2-150-v4 [--target-sensitivity 0.95]

``--derive-from``: first make ``version_dir`` a new version holding that version's
network and files (a version's card is never rewritten under the name predictions were
stored with). ``--target-sensitivity``: the default operating point, chosen on the
shifted validation pictures (``training.robustness``), never on test.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np

from training.card import CARD_FILENAME, LITERT_FILENAME, MODEL_FILENAME, read_card, write_card
from training.classes import CLASSES
from training.commands import version_command
from training.evaluate import compute_metrics
from training.export import FITTED_FLAG, SUMMED_FLAG, threshold_rule
from training.malignancy import TARGET_MALIGNANT_SENSITIVITY, fit
from training.operating_points import TARGET_SENSITIVITIES, choose_malignant_threshold, operating_points

# The flag's figures in a card's metrics; everything else there is the network's and stays.
FLAG_KEYS = (
    "malignant_threshold",
    "malignant_sensitivity_at_threshold",
    "malignant_specificity_at_threshold",
    "melanoma_recall_at_threshold",
    "melanoma_specificity_at_threshold",
)


def refit_card(
    card: dict,
    val: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray] | None,
    target_sensitivity: float = TARGET_MALIGNANT_SENSITIVITY,
) -> dict:
    """The card with a malignancy score fitted on ``val`` (labels, probabilities in ``CLASSES`` order),
    its threshold for ``target_sensitivity`` and every operating point chosen there, and the flag's
    figures measured on ``val`` and on ``test`` (scored only)."""
    if not 0.0 < target_sensitivity <= 1.0:
        raise ValueError(f"the target sensitivity must be in (0, 1], not {target_sensitivity}")
    targets = tuple(sorted({*TARGET_SENSITIVITIES, target_sensitivity}))
    labels, probabilities = val
    score = fit(labels, probabilities, f"the validation split's {len(labels)} images (calibrated probabilities)")
    threshold = choose_malignant_threshold(labels, probabilities, target_sensitivity, score)
    metrics = dict(card.get("metrics") or {})
    for name, scored in (("val", val), ("test", test)):
        if scored is None or metrics.get(name) is None:
            continue
        measured = compute_metrics(*scored, threshold, score)
        metrics[name] = {**metrics[name], **{key: measured[key] for key in FLAG_KEYS}}
    if score.card_entry() is not None and SUMMED_FLAG in metrics.get("how_measured", ""):
        metrics["how_measured"] = metrics["how_measured"].replace(SUMMED_FLAG, FITTED_FLAG)
    entry = operating_points(labels, probabilities, *(test or (None, None)), targets=targets, score=score)
    refitted = {
        **card,
        "thresholds": {"malignant": threshold, "target_sensitivity": target_sensitivity},
        "malignant_threshold": threshold,
        "threshold_rule": threshold_rule(target_sensitivity),
        "operating_points": entry,
        "metrics": metrics,
    }
    refitted.pop("malignancy_score", None)
    if score.card_entry() is not None:
        refitted["malignancy_score"] = score.card_entry()
    return refitted


def derive_version(source: Path, target: Path) -> dict:
    """Copy ``source``'s network and files (not its reports) into the new version folder ``target``;
    return its card, renamed after the folder and saying where it came from."""
    if target.exists():
        raise FileExistsError(f"{target} exists: a derived version is a new folder")
    card = json.loads((source / CARD_FILENAME).read_text(encoding="utf-8"))
    target.mkdir(parents=True)
    files = [
        MODEL_FILENAME,
        LITERT_FILENAME,
        (card.get("ood") or {}).get("file"),
        (card.get("lesion_mask") or {}).get("file"),
    ]
    for name in files:
        if name and (source / name).is_file():
            shutil.copy2(source / name, target / name)
    return {
        **card,
        "version": target.name,
        "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "derived_from": {
            "version": card["version"],
            "kept": "the network, its calibration, out-of-distribution check, lesion-mask head and heatmap",
            "changed": "the malignancy score and the flag's thresholds (training.fit_malignancy)",
        },
    }


def refit_version(version_dir: Path, data_dir, split_file, cache_dir: str | None, target_sensitivity: float) -> dict:
    """Run the version on validation and test, refit its score and flag, write its card; return the card."""
    import keras

    from training.fit_ood import features_and_probabilities
    from training.train import load_split_arrays

    typed = read_card(version_dir)
    model = keras.saving.load_model(version_dir / MODEL_FILENAME, compile=False)
    arrays = load_split_arrays(data_dir, split_file, typed.input_size, cache_dir, ("val", "test"), typed.geometry)
    order = [typed.classes.index(code) for code in CLASSES]
    scored = {
        name: (labels, features_and_probabilities(model, images)[1][:, order])
        for name, (images, labels, _) in arrays.items()
        if len(images)  # a split file without test rows: validation only
    }
    if "val" not in scored:
        raise ValueError(f"{split_file} has no validation rows to fit the malignancy score on")
    card = refit_card(typed.raw, scored["val"], scored.get("test"), target_sensitivity)
    write_card(version_dir, card)
    return card


def main(argv: list[str] | None = None) -> None:
    parser = version_command(__doc__, cache=True)
    parser.add_argument("--derive-from", type=Path, help="a version whose network the new version keeps")
    parser.add_argument("--target-sensitivity", type=float, default=TARGET_MALIGNANT_SENSITIVITY)
    args = parser.parse_args(argv)
    if not 0.0 < args.target_sensitivity <= 1.0:
        parser.error(f"--target-sensitivity must be in (0, 1], not {args.target_sensitivity}")

    if args.derive_from:
        write_card(args.version_dir, derive_version(args.derive_from, args.version_dir))
    try:
        card = refit_version(
            args.version_dir, args.data_dir, args.split_file, args.cache_dir or None, args.target_sensitivity
        )
    except BaseException:
        if args.derive_from:  # never leave a half-made version where the registry would find it
            shutil.rmtree(args.version_dir, ignore_errors=True)
        raise
    shown = ("malignancy_score", "thresholds", "operating_points")
    print(json.dumps({key: card[key] for key in shown if key in card}, indent=2))


if __name__ == "__main__":
    main()
