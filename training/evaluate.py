"""Score trained runs on the lesion-grouped split, calibrate them, and write the report.

Pipeline order: logits on validation and test; the temperature fitted on
validation; the malignancy score fitted on validation (training.malignancy) and its
threshold chosen there (>= 90 % sensitivity to akiec + bcc + mel); then every
metric on test with those fixed choices; the same for the custom-CNN baseline and
the majority-class baseline; then the report files (metrics JSON, confusion matrix
JSON + PNG, training curves PNG).

    python -m training.evaluate --run training_runs/mnv2_150 --baseline-run training_runs/cnn_150 \\
        --report-dir training_runs/mnv2_150/report

Nothing is chosen on the test split: it is only scored.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from training.calibrate import expected_calibration_error, fit_temperature, softmax
from training.classes import CLASSES
from training.data import DEFAULT_SPLIT_FILE
from training.malignancy import MALIGNANT_INDICES, SUMMED, MalignancyScore, fit
from training.operating_points import TARGET_MALIGNANT_SENSITIVITY, choose_malignant_threshold, operating_points
from training.preprocessing import DEFAULT_GEOMETRY

MEL = CLASSES.index("mel")
METRICS_FILENAME = "metrics.json"
VALIDATION_FILENAME = "validation.json"  # written by --validation-only, beside the run's model


# --- metrics ------------------------------------------------------------------------------


def compute_metrics(
    labels: np.ndarray, probabilities: np.ndarray, malignant_threshold: float, score: MalignancyScore = SUMMED
) -> dict:
    """Every quality number a card reports (balanced accuracy, macro F1, per-class recall and AUC,
    the flag's sensitivity and specificity at the threshold, calibration), for one split and one model."""
    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    predicted = probabilities.argmax(axis=1)
    class_ids = list(range(len(CLASSES)))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=class_ids, zero_division=0
    )
    per_class = {}
    for i, code in enumerate(CLASSES):
        is_class = labels == i
        auc = roc_auc_score(is_class, probabilities[:, i]) if 0 < is_class.sum() < len(labels) else None
        per_class[code] = {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
            "roc_auc": None if auc is None else float(auc),
        }
    aucs = [v["roc_auc"] for v in per_class.values() if v["roc_auc"] is not None]

    flagged = score.of(probabilities) >= malignant_threshold
    malignant = np.isin(labels, MALIGNANT_INDICES)
    melanoma = labels == MEL
    return {
        "n_images": int(len(labels)),
        "accuracy": float(accuracy_score(labels, predicted)),
        "balanced_accuracy": float(balanced_accuracy_score(labels, predicted)),
        "macro_f1": float(f1_score(labels, predicted, labels=class_ids, average="macro", zero_division=0)),
        "roc_auc_macro": float(np.mean(aucs)) if aucs else None,
        "per_class": per_class,
        "malignant_threshold": malignant_threshold,
        # "Flagged" = the malignancy score >= threshold, what the platform shows.
        "malignant_sensitivity_at_threshold": _rate(flagged, malignant),
        "malignant_specificity_at_threshold": _rate(~flagged, ~malignant),
        "melanoma_recall_at_threshold": _rate(flagged, melanoma),
        # Conservative: a flagged bcc or akiec counts against melanoma specificity.
        "melanoma_specificity_at_threshold": _rate(~flagged, ~melanoma),
        "melanoma_recall_top_class": float(recall[MEL]),
        "ece": expected_calibration_error(probabilities, labels),
        "confusion_matrix": confusion_matrix(labels, predicted, labels=class_ids).tolist(),
    }


def _rate(hit: np.ndarray, among: np.ndarray) -> float | None:
    return float(hit[among].mean()) if among.any() else None


# --- one run, end to end ---------------------------------------------------------------------


def evaluate_logits(
    val_logits,
    val_labels,
    test_logits=None,
    test_labels=None,
    target_sensitivity: float = TARGET_MALIGNANT_SENSITIVITY,
) -> dict:
    """Calibrate, fit the malignancy score and threshold it on validation, then score validation
    and (if given) test with those fixed choices."""
    temperature = fit_temperature(val_logits, val_labels)
    val_probabilities = softmax(val_logits, temperature)
    score = fit(val_labels, val_probabilities, f"the validation split's {len(val_labels)} images")
    threshold = choose_malignant_threshold(val_labels, val_probabilities, target_sensitivity, score)
    result = {
        "temperature": temperature,
        "malignancy_score": score.card_entry(),
        "malignant_threshold": threshold,
        "target_sensitivity": target_sensitivity,
    }
    scored = [("val", val_logits, val_labels)]
    if test_logits is not None:
        scored.append(("test", test_logits, test_labels))
    for name, logits, labels in scored:
        metrics = compute_metrics(labels, softmax(logits, temperature), threshold, score)
        metrics["ece_before_temperature"] = expected_calibration_error(softmax(logits), labels)
        metrics["ece_after_temperature"] = metrics["ece"]
        result[name] = metrics
    test_probabilities = None if test_logits is None else softmax(test_logits, temperature)
    result["operating_points"] = operating_points(
        val_labels, val_probabilities, test_labels, test_probabilities, score=score
    )
    return result


def majority_baseline(train_labels: np.ndarray, val_labels: np.ndarray, test_labels: np.ndarray | None) -> dict:
    """Always the most frequent training class, with the training class shares as probabilities."""
    shares = np.bincount(train_labels, minlength=len(CLASSES)) / len(train_labels)
    result = {"predicts": CLASSES[int(shares.argmax())]}
    threshold = choose_malignant_threshold(val_labels, np.tile(shares, (len(val_labels), 1)))
    for name, labels in (("val", val_labels), ("test", test_labels)):
        if labels is not None:
            result[name] = compute_metrics(labels, np.tile(shares, (len(labels), 1)), threshold)
    return result


def run_logits(run_dir: Path, arrays: dict, splits: tuple[str, ...]) -> dict[str, np.ndarray]:
    import keras

    from training.train import LOGITS_MODEL_FILENAME, RUN_FILENAME, predict_logits

    arch = json.loads((run_dir / RUN_FILENAME).read_text(encoding="utf-8"))["recipe"]["arch"]
    model = keras.saving.load_model(run_dir / LOGITS_MODEL_FILENAME)
    return {name: predict_logits(model, arrays[name][0], arch) for name in splits}


def evaluate_runs(
    run_dir: Path,
    baseline_run: Path | None,
    data_dir: str,
    split_file: str,
    cache_dir: str | None,
    validation_only: bool = False,
) -> dict:
    """The full report as a dict: shipped model, CNN baseline, majority baseline.

    ``validation_only``: score validation alone, never loading a test image; this is
    the report to choose between runs on, before the chosen one's test split is scored.
    """
    from training.train import RUN_FILENAME, load_split_arrays

    scored = ("val",) if validation_only else ("val", "test")
    run = json.loads((run_dir / RUN_FILENAME).read_text(encoding="utf-8"))
    input_size = tuple(run["recipe"]["input_size"])
    geometry = run["recipe"].get("geometry", DEFAULT_GEOMETRY)
    arrays = load_split_arrays(data_dir, split_file, input_size, cache_dir, ("train", *scored), geometry)
    labels = {name: arrays[name][1] for name in arrays}

    def scored_logits(logits: dict) -> dict:
        return evaluate_logits(logits["val"], labels["val"], logits.get("test"), labels.get("test"))

    report = {
        "model": {"run": str(run_dir), **scored_logits(run_logits(run_dir, arrays, scored))},
        "majority_baseline": majority_baseline(labels["train"], labels["val"], labels.get("test")),
        "split_file": str(split_file),
        "classes": list(CLASSES),
    }
    if baseline_run is not None:
        baseline = json.loads((baseline_run / RUN_FILENAME).read_text(encoding="utf-8"))
        baseline_size = tuple(baseline["recipe"]["input_size"])
        baseline_geometry = baseline["recipe"].get("geometry", DEFAULT_GEOMETRY)
        if (baseline_size, baseline_geometry) != (input_size, geometry):
            arrays = load_split_arrays(data_dir, split_file, baseline_size, cache_dir, scored, baseline_geometry)
        report["custom_cnn"] = {"run": str(baseline_run), **scored_logits(run_logits(baseline_run, arrays, scored))}
    return report


# --- the report files --------------------------------------------------------------------------


def plot_confusion_matrix(matrix: list[list[int]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.array(matrix)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    figure, axes = plt.subplots(figsize=(6.5, 5.5))
    image = axes.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(CLASSES)):
        for j in range(len(CLASSES)):
            color = "white" if rates[i, j] > 0.5 else "black"
            axes.text(j, i, f"{counts[i, j]}\n{rates[i, j]:.2f}", ha="center", va="center", fontsize=7, color=color)
    axes.set_xticks(range(len(CLASSES)), CLASSES)
    axes.set_yticks(range(len(CLASSES)), CLASSES)
    axes.set_xlabel("predicted (top class)")
    axes.set_ylabel("true (HAM10000 dx)")
    axes.set_title(title)
    figure.colorbar(image, ax=axes, label="share of the true class (recall on the diagonal)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_training_curves(history: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (loss_axes, score_axes) = plt.subplots(1, 2, figsize=(11, 4))
    step = np.arange(1, len(history) + 1)
    phases = [entry["phase"] for entry in history]
    loss_axes.plot(step, [e["loss"] for e in history], label="train loss (as trained: weighted or logit-adjusted)")
    loss_axes.plot(step, [e["val_loss"] for e in history], label="validation loss")
    score_axes.plot(step, [e["val_balanced_accuracy"] for e in history], label="validation balanced accuracy")
    for axes in (loss_axes, score_axes):
        for i in range(1, len(phases)):
            if phases[i] != phases[i - 1]:
                axes.axvline(i + 0.5, color="grey", linestyle="--", linewidth=1)
        axes.set_xlabel("epoch (dashed line: start of fine-tuning)")
        axes.legend()
        axes.grid(alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_report(report: dict, run_dir: Path, baseline_run: Path | None, report_dir: Path) -> None:
    from training.train import RUN_FILENAME

    report_dir.mkdir(parents=True, exist_ok=True)
    model = report["model"]
    (report_dir / METRICS_FILENAME).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    for key, name in (("custom_cnn", "custom_cnn_metrics.json"), ("majority_baseline", "majority_baseline.json")):
        if key in report:
            (report_dir / name).write_text(json.dumps(report[key], indent=2) + "\n", encoding="utf-8")
    confusion = {"classes": list(CLASSES), "rows": "true class", "columns": "predicted top class"}
    confusion["test"] = model["test"]["confusion_matrix"]
    confusion["val"] = model["val"]["confusion_matrix"]
    (report_dir / "confusion_matrix.json").write_text(json.dumps(confusion, indent=2) + "\n", encoding="utf-8")
    plot_confusion_matrix(model["test"]["confusion_matrix"], report_dir / "confusion_matrix.png", "test split")
    if "custom_cnn" in report:
        plot_confusion_matrix(
            report["custom_cnn"]["test"]["confusion_matrix"],
            report_dir / "custom_cnn_confusion_matrix.png",
            "custom CNN, test split",
        )
    for run, name in ((run_dir, "training_curves.png"), (baseline_run, "custom_cnn_training_curves.png")):
        if run is not None:
            history = json.loads((run / RUN_FILENAME).read_text(encoding="utf-8"))["history"]
            if not history:  # an ensemble (training.ensemble) was merged, not trained
                continue
            plot_training_curves(history, report_dir / name, f"{run.name}: training curves")


def summary_table(report: dict) -> str:
    rows = [("model", "split", "bal.acc", "macroF1", "acc", "AUC", "mel rec@t", "mal sens@t", "ECE before→after")]
    entries = [("MobileNetV2", report["model"]), ("custom CNN", report.get("custom_cnn"))]
    entries.append(("majority", report["majority_baseline"]))
    for name, entry in entries:
        if entry is None:
            continue
        for split in ("val", "test"):
            if split not in entry:  # a --validation-only report has no test rows
                continue
            m = entry[split]
            ece = f"{m.get('ece_before_temperature', m['ece']):.3f}→{m['ece']:.3f}"
            rows.append(
                (
                    name,
                    split,
                    f"{m['balanced_accuracy']:.3f}",
                    f"{m['macro_f1']:.3f}",
                    f"{m['accuracy']:.3f}",
                    f"{m['roc_auc_macro']:.3f}",
                    f"{m['melanoma_recall_at_threshold']:.3f}",
                    f"{m['malignant_sensitivity_at_threshold']:.3f}",
                    ece,
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    model = report["model"]
    lines.append(f"temperature {model['temperature']:.3f}, malignant threshold {model['malignant_threshold']:.4f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Calibrate, threshold and score trained runs.")
    parser.add_argument("--run", required=True, help="run folder of the model to ship")
    parser.add_argument("--baseline-run", help="run folder of the custom CNN")
    parser.add_argument("--data-dir", default="../shared/data/ham10000")
    parser.add_argument("--split-file", default=str(DEFAULT_SPLIT_FILE))
    parser.add_argument("--cache-dir", default="training_runs/cache")
    parser.add_argument("--report-dir", help="default: <run>/report")
    parser.add_argument(
        "--validation-only",
        action="store_true",
        help=f"score validation only (to choose between runs) and write <run>/{VALIDATION_FILENAME}, no report",
    )
    args = parser.parse_args(argv)

    run_dir = Path(args.run)
    baseline_run = Path(args.baseline_run) if args.baseline_run else None
    report = evaluate_runs(
        run_dir, baseline_run, args.data_dir, args.split_file, args.cache_dir or None, args.validation_only
    )
    print(summary_table(report))
    if args.validation_only:
        (run_dir / VALIDATION_FILENAME).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"validation scores written to {run_dir / VALIDATION_FILENAME}; the test split was not loaded")
        return
    report_dir = Path(args.report_dir) if args.report_dir else run_dir / "report"
    write_report(report, run_dir, baseline_run, report_dir)
    print(f"report written to {report_dir}")


if __name__ == "__main__":
    main()
