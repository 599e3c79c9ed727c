"""Ship a trained run: the calibrated model, its card and its report in ``models/<version>/``.

The exported model is the run's logits model with the fitted temperature and a
softmax appended as built-in layers (logits -> Rescaling(1/T) -> Softmax), so
``keras.saving.load_model`` needs no custom objects and every served probability
is already calibrated. The card is validated with ``training.card.parse_card``
before it is written, and the saved model is reloaded and checked.

    python -m training.export --run training_runs/mnv2_150 --report-dir training_runs/mnv2_150/report \\
        --version mobilenetv2-150-v1
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np

from training.augment import describe_augmentation
from training.background import MARGIN_PX, describe_cutout
from training.card import CARD_FILENAME, MODEL_FILENAME, parse_card, write_card
from training.classes import CLASSES, FULL_NAMES, MALIGNANT_CLASSES
from training.data import SPLIT_FILE_IN_REPO, read_split
from training.framing import describe_framing
from training.operating_points import TARGET_MALIGNANT_SENSITIVITY
from training.preprocessing import DEFAULT_GEOMETRY, SOURCE_SHORT_SIDE
from training.train import IMBALANCE_MODES

DATASET = "HAM10000 (Tschandl, Rosendahl, Kittler, Sci. Data 5, 180161, 2018), 10,015 dermatoscopic images"
LICENCE = "CC BY-NC 4.0 (attribution, non-commercial): the shipped model is for non-commercial use"
GEOMETRY_WORDS = {
    "centre_crop": "centre-cropped to the input's aspect ratio, then bilinear-resized",
    "squash": "resized whole to the input (nothing cut), bilinear",
    "pad": "letterboxed with black to the input's aspect ratio (nothing cut or distorted), then bilinear-resized",
}


def describe_input(geometry: str) -> dict:
    """The card's ``input``: how to feed the model, read by serving (``geometry``) and by people."""
    return {
        "geometry": geometry,
        "source_short_side": SOURCE_SHORT_SIDE,
        "description": (
            "float32 RGB pixels 0-255, shape (N, H, W, 3) with (H, W) = input_size: the picture first "
            f"downscaled (antialiased, one step) to a shorter side of {SOURCE_SHORT_SIDE} px, HAM10000's "
            f"training scale, then {GEOMETRY_WORDS[geometry]} (training.preprocessing.to_model_input). "
            "Pixel scaling is inside the model."
        ),
    }


# The layers every served MobileNetV2 version ends with (training.models, then
# build_calibrated_model). Workers rely on them for heatmaps and features:
# worker.model_cache and training.export_litert split the model here.
SERVED_HEAD = ("pool", "head_dropout", "logits", "temperature_scaling", "probabilities")


def has_served_head(model) -> bool:
    """Does the model end in SERVED_HEAD, one layer after another, on 4-D feature maps?"""
    layers = model.layers[-len(SERVED_HEAD) :]
    if tuple(layer.name for layer in layers) != SERVED_HEAD or len(layers[0].input.shape) != 4:
        return False
    return all(after.input is before.output for before, after in zip(layers, layers[1:], strict=False))


def build_calibrated_model(logits_model, temperature: float):
    """logits -> Rescaling(1/T) -> Softmax, on the logits model's own graph."""
    import keras

    scaled = keras.layers.Rescaling(1.0 / temperature, name="temperature_scaling")(logits_model.output)
    probabilities = keras.layers.Softmax(name="probabilities")(scaled)
    return keras.Model(logits_model.input, probabilities, name=f"{logits_model.name}_calibrated")


def split_counts(split_file: Path | str) -> dict:
    split = read_split(split_file)
    counts = {
        name: {code: int(n) for code, n in rows["dx"].value_counts().items()} for name, rows in split.groupby("split")
    }
    return {
        name: {"images": sum(by_class.values()), "by_class": {code: by_class.get(code, 0) for code in CLASSES}}
        for name, by_class in counts.items()
    }


def describe_architecture(recipe: dict, ensemble: dict | None = None) -> str:
    if ensemble:
        names = ", ".join(member["version"] for member in ensemble["members"])
        return (
            f"An ensemble of {len(ensemble['members'])} MobileNetV2 networks ({names}) in one model: the ImageNet "
            f"layers before {ensemble['shared_stem_until']} computed once and shared, each member's fine-tuned "
            f"layers after them, then {ensemble['combination']}; temperature-scaled softmax. "
            "Rescaling to [-1, 1] inside the model."
        )
    if recipe["arch"] == "mobilenetv2":
        return (
            "MobileNetV2 (alpha 1.0, ImageNet weights, no top) called with training=False, "
            f"global average pooling, dropout {recipe['dropout']}, dense 7 logits; "
            "temperature-scaled softmax. Rescaling to [-1, 1] inside the model."
        )
    return (
        "Custom CNN: five Conv2D(3x3)+batch-norm+ReLU+max-pooling blocks, global average pooling, "
        "dense 128, dropout, dense 7"
    )


# How a card's metrics say the flag was counted (training.fit_malignancy rewrites older cards' wording).
SUMMED_FLAG = "P(akiec)+P(bcc)+P(mel) >= the threshold"
FITTED_FLAG = "its malignancy score (the card's malignancy_score, fitted on the validation split) >= the threshold"


def threshold_rule(target_sensitivity: float) -> str:
    return (
        "flag as possibly malignant when the malignancy score (malignancy_score; without one, "
        "P(akiec)+P(bcc)+P(mel)) >= thresholds.malignant; chosen on the validation split as the highest "
        f"value with >= {target_sensitivity:.0%} sensitivity to akiec+bcc+mel"
    )


INTENDED_USE = (
    "Research and education: triage support on dermatoscopic images of pigmented skin lesions. "
    "Not a medical device and not for diagnosis. See docs/MODEL_CARD.md."
)


def make_card(
    version: str,
    created: str,
    *,
    architecture: str,
    keras_version: str,
    input_size,
    geometry: str,
    evaluation: dict,
    how_measured: str,
    compared_with: dict,
    trained_on: dict,
    recipe: dict,
) -> dict:
    """The card.json of every model version, shipped (``shipped_card``) or retrained
    (training.retrain): how to feed the model, how to read it, how good it is, where it came from.

    ``evaluation`` is ``training.evaluate.evaluate_logits``'s: temperature, threshold, operating
    points, validation and test metrics. ``compared_with``: the metrics of what it is measured
    against (baselines, or the version it would replace), added to the card's metrics.
    ``recipe`` records the class weighting as ``loss_weights`` (``loss_weights_of`` reads it).
    """
    if recipe.get("loss_weights") not in IMBALANCE_MODES:
        raise ValueError(f"the recipe must record its loss_weights, one of {IMBALANCE_MODES}")
    return {
        "version": version,
        "created": created,
        "architecture": architecture,
        "keras_version": keras_version,
        "classes": list(CLASSES),
        "class_names": {code: FULL_NAMES[code] for code in CLASSES},
        "malignant_classes": sorted(MALIGNANT_CLASSES),
        "input_size": [int(s) for s in input_size],
        "input": describe_input(geometry),
        "output": "(N, 7) calibrated probabilities in 'classes' order, summing to 1",
        "thresholds": {
            "malignant": evaluation["malignant_threshold"],
            "target_sensitivity": evaluation.get("target_sensitivity", TARGET_MALIGNANT_SENSITIVITY),
        },
        "malignant_threshold": evaluation["malignant_threshold"],
        "threshold_rule": threshold_rule(evaluation.get("target_sensitivity", TARGET_MALIGNANT_SENSITIVITY)),
        # Absent (None) for the plain sum, which is what a card without the entry means.
        **({"malignancy_score": evaluation["malignancy_score"]} if evaluation.get("malignancy_score") else {}),
        "operating_points": evaluation.get("operating_points"),
        # Filled in by the commands that measure them on validation (they need the lesion masks):
        # training.explanations --write-card, training.robustness --write-card, training.lesion_mask fit.
        "explanation": {"method": "grad-cam", "figures": None, "how_measured": "not measured yet"},
        "robustness": None,
        "lesion_mask": None,
        "temperature": evaluation["temperature"],
        "calibration": "temperature scaling built into the model",
        "metrics": {
            "how_measured": how_measured,
            "test": evaluation.get("test"),
            "val": evaluation["val"],
            # A candidate (exported from the validation-only report) has no test figures yet.
            "ece_before_temperature": (evaluation.get("test") or evaluation["val"])["ece_before_temperature"],
            "ece_after_temperature": (evaluation.get("test") or evaluation["val"])["ece_after_temperature"],
            **compared_with,
        },
        "trained_on": trained_on,
        "recipe": recipe,
        "intended_use": INTENDED_USE,
    }


def loss_weights_of(recipe: dict) -> str:
    """The class weighting ("none", "sqrt", "balanced") a card's recipe records; "balanced" when it records none.

    Retrained cards that predate ``loss_weights`` hold the weighting they used in ``imbalance``.
    """
    for key in ("loss_weights", "imbalance"):
        if recipe.get(key) in IMBALANCE_MODES:
            return recipe[key]
    return "balanced"


def describe_training_augmentation(recipe: dict, ensemble: dict | None = None) -> str:
    """What a run's recipe (run.json's) did to its training pictures, in words; an ensemble's, per member."""
    if ensemble:
        return " | ".join(f"{m['version']}: {m['recipe']['augmentation']}" for m in ensemble["members"])
    parts = [describe_augmentation(recipe.get("color_augmentation", False))]
    if recipe.get("background_cutout"):
        parts.append(describe_cutout(recipe["background_cutout"], recipe.get("cutout_margin_px", MARGIN_PX)))
    if recipe.get("framing"):
        parts.append(describe_framing())
    return "; ".join(parts)


def shipped_card(version: str, run: dict, report: dict, split_file: str, created: str) -> dict:
    """The card of a trained run (run.json) scored by training.evaluate (its report), for models/<version>/."""
    recipe, ensemble = run["recipe"], run.get("ensemble")

    def summary(entry: dict) -> dict | None:
        if entry.get("test") is None:
            return None
        keys = (
            "balanced_accuracy",
            "macro_f1",
            "accuracy",
            "roc_auc_macro",
            "melanoma_recall_at_threshold",
            "malignant_sensitivity_at_threshold",
        )
        return {key: entry["test"][key] for key in keys}

    baselines = {"majority_class": summary(report["majority_baseline"])}
    if "custom_cnn" in report:
        baselines["custom_cnn"] = summary(report["custom_cnn"])
    history = run.get("history", [])
    return make_card(
        version,
        created,
        architecture=describe_architecture(recipe, ensemble),
        keras_version=run.get("hardware", {}).get("keras", ""),
        input_size=recipe["input_size"],
        geometry=recipe.get("geometry", DEFAULT_GEOMETRY),
        evaluation=report["model"],
        how_measured=(
            "Internal test split of HAM10000 (lesion- and duplicate-grouped, stratified by dx, never used for "
            "any choice). Temperature fitted and malignant threshold chosen on the validation split. Top-class "
            f"metrics use the argmax; 'at_threshold' metrics flag an image when {FITTED_FLAG}. "
            "ECE: top-label, 15 equal-width bins."
        ),
        compared_with={"baselines_test": baselines},
        trained_on={
            "dataset": DATASET,
            "licence": LICENCE,
            "split_file": str(split_file),
            "split": "train/val/test ~70/15/15, stratified by dx, grouped by lesion_id and by near-duplicate "
            "pictures (256-bit dHash, <= 10 bits), seed in training/data.py",
            "counts": split_counts(split_file),
        },
        recipe={
            **recipe,
            "loss_weights": run["imbalance"],
            "imbalance_handling": describe_imbalance(
                run["imbalance"], recipe.get("sampling", "shuffle"), recipe.get("logit_adjustment", 0.0)
            ),
            "imbalance_comparison_val_balanced_accuracy": run.get("imbalance_comparison_val_balanced_accuracy"),
            "class_weights": run.get("class_weights"),
            "augmentation": describe_training_augmentation(recipe, ensemble),
            "optimizer": "Adam, categorical cross-entropy on logits; cosine-decayed learning rate in fine-tuning",
            "best_epoch": run.get("best_epoch"),
            "weight_average": run.get("weight_average"),
            "head_epochs_run": sum(1 for e in history if e["phase"] == "head"),
            "fine_tune_epochs_run": sum(1 for e in history if e["phase"].startswith("fine_tune")),
            # A continued run (--init-from) is one recipe in two commands: the first one's settings.
            "continued_from_recipe": run.get("previous_recipe"),
            "fine_tuned_layers": run.get("fine_tuned_layers"),
            "train_minutes": round(run["train_seconds"] / 60, 1),
            "hardware": run.get("hardware"),
            **({"ensemble": ensemble} if ensemble else {}),
        },
    )


def check_export(version_dir: Path, logits_model, temperature: float, input_size: tuple[int, int]) -> None:
    """Reload with plain load_model and compare with softmax(logits / T) on random pixels."""
    import keras

    from training.calibrate import softmax

    reloaded = keras.saving.load_model(version_dir / MODEL_FILENAME)
    pixels = np.random.default_rng(0).uniform(0, 255, (4, *input_size, 3)).astype(np.float32)
    probabilities = np.asarray(reloaded(pixels, training=False))
    expected = softmax(np.asarray(logits_model(pixels, training=False)), temperature)
    if probabilities.shape != (4, len(CLASSES)) or not np.allclose(probabilities, expected, atol=1e-4):
        raise RuntimeError(f"{version_dir}: the reloaded model does not reproduce the calibrated outputs")


def export(
    run_dir: Path, report_dir: Path, version: str, models_dir: Path, split_file: str, candidate: bool = False
) -> Path:
    """Write models_dir/<version>: the calibrated model, its card and the report.

    ``candidate``: from the run's validation-only report (training.evaluate --validation-only), so that
    the framing-robustness and heatmap reports can be run on a version before its test split is ever
    scored; its card has no test figures, and it is not meant for models/."""
    import keras

    from training.evaluate import METRICS_FILENAME, VALIDATION_FILENAME
    from training.train import LOGITS_MODEL_FILENAME, RUN_FILENAME

    run = json.loads((run_dir / RUN_FILENAME).read_text(encoding="utf-8"))
    scored = run_dir / VALIDATION_FILENAME if candidate else report_dir / METRICS_FILENAME
    report = json.loads(scored.read_text(encoding="utf-8"))
    card = shipped_card(version, run, report, split_file, dt.date.today().isoformat())
    parse_card(card)  # fail before writing anything

    logits_model = keras.saving.load_model(run_dir / LOGITS_MODEL_FILENAME)
    calibrated = build_calibrated_model(logits_model, report["model"]["temperature"])
    version_dir = models_dir / version
    version_dir.mkdir(parents=True, exist_ok=True)
    calibrated.save(version_dir / MODEL_FILENAME)
    if not candidate and report_dir.resolve() != (version_dir / "report").resolve():
        shutil.copytree(report_dir, version_dir / "report", dirs_exist_ok=True)
    write_card(version_dir, card)
    check_export(version_dir, logits_model, report["model"]["temperature"], tuple(card["input_size"]))
    return version_dir


def describe_imbalance(weights: str, sampling: str, logit_adjustment: float = 0.0) -> str:
    """How the run handled the class imbalance, in words for the card."""
    parts = []
    if logit_adjustment:
        parts.append(f"logit-adjusted loss (tau {logit_adjustment:g} x log class prior, in training only)")
    if weights != "none" or not parts:
        parts.append(f"class-weighted loss ('{weights}')" if weights != "none" else "unweighted loss")
    if sampling != "shuffle":
        how = "as often as the square root of its size" if sampling == "sqrt" else "equally often"
        parts.append(f"class-resampled batches ('{sampling}': each class drawn {how})")
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Export a trained, evaluated run as a model version.")
    parser.add_argument("--run", required=True)
    parser.add_argument("--report-dir", help="default: <run>/report")
    parser.add_argument("--version", required=True, help="e.g. mobilenetv2-150-v1")
    parser.add_argument("--models-dir", default="models")
    parser.add_argument("--split-file", default=SPLIT_FILE_IN_REPO, help="as recorded in the card")
    parser.add_argument(
        "--candidate",
        action="store_true",
        help="from <run>/validation.json (no test figures): to measure robustness before choosing",
    )
    args = parser.parse_args(argv)
    run_dir = Path(args.run)
    report_dir = Path(args.report_dir) if args.report_dir else run_dir / "report"
    version_dir = export(run_dir, report_dir, args.version, Path(args.models_dir), args.split_file, args.candidate)
    size_mb = (version_dir / MODEL_FILENAME).stat().st_size / 1e6
    print(f"exported {version_dir} ({MODEL_FILENAME} {size_mb:.1f} MB, {CARD_FILENAME} valid)")


if __name__ == "__main__":
    main()
