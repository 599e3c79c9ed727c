"""Does a fitted malignancy score beat the sum? Cross-fitted on validation, checked on its shifts.

The fitted score (``training.malignancy``) learns its weights on the validation split,
where its threshold is also chosen, so its validation figures flatter it. This report
judges it fairly: the split's pictures are cut into lesion-grouped folds; each fold's
scores come from a regression fitted on the other folds, for the fold's clean pictures and
for the same pictures under every shift of ``training.shifts``. Then, for the sum and the
cross-fitted score alike: the AUC (clean, and the mean over the shifts), the specificity at
the thresholds that reach 85 / 90 / 95 % sensitivity on clean validation, the shifts' mean
sensitivity and specificity at those same thresholds (what serving would do), and the
shifts' specificity at each shift's own 90 % threshold (discrimination under the shift).

    python -m training.malignancy_report models/mobilenetv2-150-v4 --data-dir ../shared/data/ham10000 \\
        [--fold-seeds 0,1,2] [--folds 5] [--limit 400] [--out report.json] [--probabilities P.npz]

``--probabilities``: the version's readings of the same pictures saved by
``training.robustness --probabilities-out`` (the default seed and sample), instead of running
the model over them again.

Writes ``<version>/report/malignancy_score.json`` (or ``--out``). Validation only: the
choice it informs is made before the test split is scored.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from training.data import DEFAULT_SPLIT_FILE, SPLIT_FILE_IN_REPO
from training.malignancy import MALIGNANT_INDICES, REGULARISATION_C, SUMMED, features
from training.operating_points import TARGET_SENSITIVITIES, highest_threshold

REPORT_FILENAME = "malignancy_score.json"
CLEAN = "clean"
OWN_THRESHOLD_TARGET = 0.90


def _rates(scores: np.ndarray, malignant: np.ndarray, threshold: float) -> tuple[float, float]:
    flagged = scores >= threshold
    return float(flagged[malignant].mean()), float((~flagged)[~malignant].mean())


def score_figures(scores: dict[str, np.ndarray], malignant: np.ndarray) -> dict:
    """The figures of one scorer: ``scores`` per condition (``clean`` first, then the shifts)."""
    from sklearn.metrics import roc_auc_score

    shifts = [name for name in scores if name != CLEAN]
    figures = {
        "auc_clean": float(roc_auc_score(malignant, scores[CLEAN])),
        "auc_mean_over_shifts": float(np.mean([roc_auc_score(malignant, scores[s]) for s in shifts]))
        if shifts
        else None,
        "points": [],
    }
    for target in TARGET_SENSITIVITIES:
        threshold = highest_threshold(scores[CLEAN], malignant, target)
        over_shifts = np.array([_rates(scores[s], malignant, threshold) for s in shifts]) if shifts else None
        figures["points"].append(
            {
                "target_sensitivity": target,
                "clean_specificity": _rates(scores[CLEAN], malignant, threshold)[1],
                "shifts_sensitivity": None if over_shifts is None else float(over_shifts[:, 0].mean()),
                "shifts_specificity": None if over_shifts is None else float(over_shifts[:, 1].mean()),
                "worst_shift_sensitivity": None if over_shifts is None else float(over_shifts[:, 0].min()),
            }
        )
    own = [
        _rates(scores[s], malignant, highest_threshold(scores[s], malignant, OWN_THRESHOLD_TARGET))[1] for s in shifts
    ]
    figures["shifts_specificity_at_own_90"] = float(np.mean(own)) if own else None
    return figures


def cross_fitted_scores(
    labels: np.ndarray, groups: np.ndarray, probabilities: dict[str, np.ndarray], folds: int, seed: int
) -> dict[str, np.ndarray]:
    """Per condition, each picture's fitted score from a regression that never saw its lesion group."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold

    malignant = np.isin(labels, MALIGNANT_INDICES)
    scores = {name: np.zeros(len(labels)) for name in probabilities}
    for fit_rows, held_out in StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(
        probabilities[CLEAN], labels, groups
    ):
        regression = LogisticRegression(C=REGULARISATION_C, max_iter=5000)
        regression.fit(features(probabilities[CLEAN][fit_rows]), malignant[fit_rows])
        for name, condition in probabilities.items():
            scores[name][held_out] = regression.decision_function(features(condition[held_out]))
    return scores


def compare(
    labels: np.ndarray, groups: np.ndarray, probabilities: dict[str, np.ndarray], folds: int = 5, seeds=(0, 1, 2)
) -> dict:
    """The sum's figures and the cross-fitted score's, once per fold seed; ``probabilities``: per
    condition (``clean`` first), (N, 7) in ``CLASSES`` order, the same N pictures in each."""
    malignant = np.isin(labels, MALIGNANT_INDICES)
    summed = {name: SUMMED.of(condition) for name, condition in probabilities.items()}
    return {
        "sum": score_figures(summed, malignant),
        "fitted_cross_fitted": {
            str(seed): score_figures(cross_fitted_scores(labels, groups, probabilities, folds, seed), malignant)
            for seed in seeds
        },
    }


def main(argv: list[str] | None = None) -> None:
    from training.robustness import (
        VersionModel,
        labels_of,
        load_originals,
        load_probabilities,
        machine,
        run_condition,
        split_rows,
    )
    from training.shifts import SHIFTS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("version_dir", type=Path)
    parser.add_argument("--data-dir", required=True, help="HAM10000 folder (metadata CSV, images/, masks/)")
    parser.add_argument("--split-file", default=str(DEFAULT_SPLIT_FILE))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--fold-seeds", default="0,1,2", help="comma-separated seeds of the fold assignment")
    parser.add_argument("--limit", type=int, help="a seeded random sample of the validation split")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--probabilities", type=Path, help="training.robustness --probabilities-out's file")
    args = parser.parse_args(argv)
    seeds = [int(seed) for seed in args.fold_seeds.split(",")]

    started = time.perf_counter()
    model = VersionModel(args.version_dir)
    rows = split_rows(args.split_file, "val", args.limit)
    image_ids = rows["image_id"].tolist()
    if args.probabilities:
        try:
            probabilities = load_probabilities(args.probabilities, model.card.version, image_ids, [CLEAN, *SHIFTS])
        except (ValueError, OSError, KeyError) as exc:
            parser.error(str(exc))
    else:
        originals = load_originals(args.data_dir, image_ids)
        probabilities = {}
        for name in [CLEAN, *SHIFTS]:
            probabilities[name] = run_condition(model, originals, image_ids, None if name == CLEAN else name, 17)[0]
            print(f"  {name}", flush=True)
    report = {
        "version": model.card.version,
        "split": "val",
        "split_file": SPLIT_FILE_IN_REPO if Path(args.split_file) == DEFAULT_SPLIT_FILE else args.split_file,
        "n_images": len(rows),
        "folds": args.folds,
        "grouped_by": "the split file's lesion / near-duplicate group",
        "regularisation_c": REGULARISATION_C,
        **compare(labels_of(rows), rows["group"].to_numpy(), probabilities, args.folds, seeds),
        "how_measured": __doc__.split("\n\n")[1].replace("\n", " "),
        "machine": machine(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    out = args.out or args.version_dir / "report" / REPORT_FILENAME
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    for name, figures in [("sum", report["sum"]), *report["fitted_cross_fitted"].items()]:
        points = " / ".join(f"{p['clean_specificity']:.3f}" for p in figures["points"])
        own = figures["shifts_specificity_at_own_90"]
        print(f"{name:>4}: AUC {figures['auc_clean']:.3f} (shifts {figures['auc_mean_over_shifts']:.3f}); "
              f"specificity at 85/90/95 % {points}; shifts at own 90 % {own:.3f}")  # fmt: skip
    print(f"report written to {out}")


if __name__ == "__main__":
    main()
