"""A retraining job, as plain functions: labelled images in, a registered (maybe active) version out.

Reuses ``training/`` for everything that is about learning: the class weights,
phase-1 head training on frozen features, temperature scaling, the malignancy
threshold, the metrics and the calibrated export. What is here is the platform's
side: which images, which split, progress and cancellation, the registry and the
quality gate. TensorFlow is imported inside the functions that need it: the web
process imports ``worker.tasks`` and must never load it.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from classifier.models import NO_ACTIVE_VERSION, LesionImage, ModelActivation, ModelVersion, TrainingJob
from classifier.quality_gate import quality_gate
from classifier.training_data import (
    NotEnoughData,
    assign_split,
    count_by_part,
    group_key,
    require_enough_labelled_images,
    saved_lesion_splits,
)
from training.calibrate import softmax
from training.card import MODEL_FILENAME, read_card, write_card
from training.classes import CLASSES
from training.fit_ood import fit_ood_entries
from training.ood import OOD_FILENAME, save_detector
from training.preprocessing import load_model_input

logger = logging.getLogger(__name__)

DEFAULT_INPUT_SIZE = (150, 150)  # for a fresh ImageNet start; a start from a version keeps its size
LEARNING_RATE = {"active": 3e-4, "imagenet": 1e-3}  # gentler when refining an already trained head


class JobCancelled(Exception):
    pass


@dataclass
class LabelledSet:
    images: list[LesionImage]
    labels: np.ndarray  # class indices in CLASSES order
    splits: np.ndarray  # "train" / "val" / "test"

    def part(self, name: str) -> tuple[list[LesionImage], np.ndarray]:
        chosen = self.splits == name
        return [image for image, keep in zip(self.images, chosen, strict=True) if keep], self.labels[chosen]


# --- which images, which split ---------------------------------------------------------------


def labelled_set() -> LabelledSet:
    """Every labelled image with its class and part; NotEnoughData if the job's rule is not met."""
    images = list(LesionImage.objects.exclude(diagnosis="").order_by("id"))
    saved = saved_lesion_splits()
    labels = np.array([CLASSES.index(image.diagnosis) for image in images], dtype=np.int64)
    splits = np.array([assign_split(group_key(image.lesion_id, image.sha256), saved) for image in images])
    require_enough_labelled_images(count_by_part(zip(splits, (image.diagnosis for image in images), strict=True)))
    return LabelledSet(images, labels, splits)


def load_pixels(images: list[LesionImage], input_size: tuple[int, int]) -> np.ndarray:
    return np.stack([load_model_input(image.file.path, input_size) for image in images]).astype(np.uint8)


# --- the job ----------------------------------------------------------------------------------


def run_training_job(job_id: int, task_id: str) -> None:
    job = TrainingJob.objects.get(pk=job_id)
    if not job.claim(task_id):
        logger.info("training job %s: not claimed (status %s)", job_id, job.status)
        return
    started = time.monotonic()
    version_dir: Path | None = None
    try:
        result, version_dir = train_and_export(job)
        with transaction.atomic():
            version = ModelVersion.objects.create(
                name=result["card"]["version"],
                directory=version_dir.name,
                root=ModelVersion.Root.TRAINED,
                card=result["card"],
                malignant_threshold=result["card"]["thresholds"]["malignant"],
            )
            decision = quality_gate(
                result["candidate_metrics"],
                result["incumbent_metrics"],
                settings.TRAINING_GATE_MAX_BALANCED_ACCURACY_DROP,
                settings.TRAINING_GATE_MIN_MELANOMA_RECALL,
                settings.TRAINING_GATE_MIN_HELD_OUT_PER_CLASS,
                validation=result["card"]["metrics"]["val"],
            )
            if decision.passed:
                version.activate(
                    via=ModelActivation.Via.GATE, reasons=[f"passed the quality gate of training job {job.pk}"]
                )
            gate = {**decision.as_dict(), "activated": decision.passed}
            outcome = (
                "passed: activated"
                if decision.passed
                else "refused to judge"
                if decision.refused
                else ("not passed: kept as candidate")
            )
            job.log(f"quality gate {outcome}")
            job.finish(TrainingJob.Status.SUCCEEDED, result_version=version, gate=gate, metrics=result["job_metrics"])
        logger.info("training job %s: done in %.0f s, version %s", job_id, time.monotonic() - started, version.name)
    except JobCancelled:
        _discard(version_dir)
        job.log("cancelled")
        job.finish(TrainingJob.Status.CANCELLED, error="Cancelled by an administrator.")
    except NotEnoughData as exc:
        _discard(version_dir)
        job.finish(TrainingJob.Status.FAILED, error=str(exc))
    except Exception as exc:
        _discard(version_dir)
        logger.exception("training job %s failed", job_id)
        job.log(f"failed: {exc.__class__.__name__}: {exc}")
        job.finish(TrainingJob.Status.FAILED, error=f"{exc.__class__.__name__}: {exc}")


def _discard(version_dir: Path | None) -> None:
    if version_dir is not None and version_dir.exists():
        shutil.rmtree(version_dir, ignore_errors=True)


def train_and_export(job: TrainingJob) -> tuple[dict, Path]:
    """Train per the job, evaluate beside the active version, export the new version's folder."""
    import keras

    from training.evaluate import compute_metrics, evaluate_logits
    from training.export import build_calibrated_model, describe_imbalance
    from training.train import IMBALANCE_MODES, Recipe, class_weights, train_head

    data = labelled_set()
    base = ModelVersion.active()
    job.base_version = base
    TrainingJob.objects.filter(pk=job.pk).update(base_version=base)
    sizes = {name: int((data.splits == name).sum()) for name in ("train", "val", "test")}
    job.log(f"{len(data.images)} labelled images: {sizes} in train/val/test")

    start_from = job.start_from
    if start_from == TrainingJob.StartFrom.ACTIVE and base is None:
        raise ValueError(NO_ACTIVE_VERSION)
    if start_from == TrainingJob.StartFrom.ACTIVE:
        base_card = read_card(base.folder)
        input_size = base_card.input_size
        served = keras.saving.load_model(base.model_path, compile=False)
        logits_model, features_model, head = split_calibrated_model(served)
        imbalance = _imbalance_of(base_card.raw, IMBALANCE_MODES)
        # A version trained with a logit-adjusted loss keeps it: its head was fitted
        # to unweighted, prior-shifted logits, and class weights on top would count
        # the rare classes twice.
        adjustment = float(base_card.raw.get("recipe", {}).get("logit_adjustment") or 0.0)
    else:
        from training.models import build_mobilenet_v2

        input_size = DEFAULT_INPUT_SIZE
        logits_model, _, head = build_mobilenet_v2(input_size, settings.TRAINING_IMAGENET_WEIGHTS)
        features_model = keras.Model(logits_model.input, logits_model.get_layer("pool").output)
        imbalance = "balanced"
        adjustment = 0.0
        served = None

    train_images, train_labels = data.part("train")
    val_images, val_labels = data.part("val")
    test_images, test_labels = data.part("test")
    job.log(f"computing features at {input_size[0]}x{input_size[1]}")
    val_pixels = load_pixels(val_images, input_size).astype(np.float32)  # kept: the OOD check's texture bar
    features = {
        "train": features_model.predict(load_pixels(train_images, input_size).astype(np.float32), 32, verbose=0),
        "val": features_model.predict(val_pixels, batch_size=32, verbose=0),
        "test": features_model.predict(load_pixels(test_images, input_size).astype(np.float32), 32, verbose=0),
    }
    _check_cancel(job)

    incumbent_metrics = None
    if base is not None:
        incumbent_probabilities = served_probabilities(base, test_images, served)
        incumbent_metrics = compute_metrics(test_labels, incumbent_probabilities, base.malignant_threshold)

    recipe = Recipe(
        input_size=input_size, head_epochs=job.epochs, head_lr=LEARNING_RATE[start_from], logit_adjustment=adjustment
    )
    if adjustment > 0:
        imbalance = "none"  # no class weights on top of the adjusted loss
    history: list[dict] = []
    tracker = train_head(
        head,
        features["train"],
        train_labels,
        class_weights(train_labels, imbalance),
        features["val"],
        val_labels,
        recipe,
        float("inf"),
        _epoch_reporter(job, history),
    )
    job.log(f"best validation balanced accuracy {tracker.best_score:.3f} at epoch {tracker.best_epoch}")

    val_logits = head.predict(features["val"], verbose=0)
    test_logits = head.predict(features["test"], verbose=0)
    evaluation = evaluate_logits(val_logits, val_labels, test_logits, test_labels)
    _check_cancel(job)

    version = f"retrain-{job.pk}-{timezone.now():%Y%m%d-%H%M%S}"
    card = {
        "version": version,
        "created": timezone.now().isoformat(),
        "architecture": (base.card.get("architecture") if start_from == "active" else "MobileNetV2 transfer"),
        "classes": list(CLASSES),
        "input_size": list(input_size),
        "thresholds": {"malignant": evaluation["malignant_threshold"]},
        "operating_points": evaluation["operating_points"],
        "temperature": evaluation["temperature"],
        "calibration": "temperature scaling built into the model",
        "metrics": {"test": evaluation["test"], "val": evaluation["val"], "incumbent_test": incumbent_metrics},
        "trained_on": {
            "dataset": "labelled images in this lesionsite database",
            "images": {name: int((data.splits == name).sum()) for name in ("train", "val", "test")},
            "held_out": "the 'test' part: saved HAM10000 split by lesion_id, else a stable hash of the lesion",
        },
        "recipe": {
            "training_job": job.pk,
            "start_from": start_from,
            "base_version": base.name if base else None,
            "head_epochs": job.epochs,
            "head_lr": recipe.head_lr,
            "imbalance": imbalance,
            "logit_adjustment": adjustment,
            "imbalance_handling": describe_imbalance(imbalance, "shuffle", adjustment),
            "phase": "classification head retrained on frozen features",
        },
    }
    val_probabilities = softmax(val_logits, evaluation["temperature"])
    ood_check = fit_ood_check(job, features, train_labels, (val_probabilities, val_labels, val_pixels))
    if ood_check is not None:
        card["ood"], card["uncertainty"] = ood_check[1], ood_check[2]
    version_dir = export_version(
        build_calibrated_model(logits_model, evaluation["temperature"]), card, ood_check[0] if ood_check else None
    )
    return {
        "card": card,
        "candidate_metrics": evaluation["test"],
        "incumbent_metrics": incumbent_metrics,
        "job_metrics": {
            "history": history,
            "test": _headline(evaluation["test"]),
            "incumbent_test": _headline(incumbent_metrics) if incumbent_metrics else None,
        },  # fmt: skip
    }, version_dir


def fit_ood_check(job: TrainingJob, features: dict, train_labels: np.ndarray, val: tuple):
    """The new version's out-of-distribution check (training.fit_ood), or None if the data cannot fit one."""
    val_probabilities, val_labels, val_pixels = val
    try:
        return fit_ood_entries(
            (features["train"], train_labels),
            (features["val"], val_probabilities, val_labels, val_pixels),
            uncertain_below=settings.UNCERTAIN_BELOW,
        )
    except (ValueError, np.linalg.LinAlgError) as exc:
        job.log(f"no out-of-distribution check for this version: {exc}")
        return None


def export_version(model, card: dict, ood_detector=None) -> Path:
    """Write model, card, OOD detector and LiteRT export to a hidden folder, then rename it
    into TRAINED_MODEL_ROOT (a data folder, never the checkout's models/): a crash half-way
    leaves no folder that looks like a version."""
    root = Path(settings.TRAINED_MODEL_ROOT)
    partial = root / f".partial-{card['version']}"
    try:
        partial.mkdir(parents=True)
        model.save(partial / MODEL_FILENAME)
        if ood_detector is not None:
            save_detector(ood_detector, partial / OOD_FILENAME)
        write_card(partial, json.loads(json.dumps(card, default=float)))
        # Beside the .keras file, so the version also serves with INFERENCE_BACKEND=litert.
        from training.export_litert import export_version as export_litert

        export_litert(partial)
        final = root / card["version"]
        partial.rename(final)
        return final
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def split_calibrated_model(served):
    """From an exported model (… pool → head_dropout → logits → temperature → softmax): the logits
    model, the feature model and a head model sharing the logits layer's weights."""
    import keras

    names = {layer.name for layer in served.layers}
    if not {"pool", "logits"} <= names:
        raise ValueError("The active version has no 'pool' and 'logits' layers to retrain from; start from ImageNet.")
    logits_model = keras.Model(served.input, served.get_layer("logits").output)
    features_model = keras.Model(served.input, served.get_layer("pool").output)
    feature_inputs = keras.Input(shape=served.get_layer("pool").output.shape[1:], name="features")
    x = served.get_layer("head_dropout")(feature_inputs) if "head_dropout" in names else feature_inputs
    head = keras.Model(feature_inputs, served.get_layer("logits")(x), name="head")
    return logits_model, features_model, head


def served_probabilities(version: ModelVersion, images: list[LesionImage], served=None) -> np.ndarray:
    """The version's calibrated probabilities, exactly as the inference workers compute them."""
    import keras

    card = read_card(version.folder)
    model = served if served is not None else keras.saving.load_model(version.model_path, compile=False)
    probabilities = model.predict(load_pixels(images, card.input_size).astype(np.float32), batch_size=32, verbose=0)
    order = [card.classes.index(code) for code in CLASSES]
    return probabilities[:, order]


def _epoch_reporter(job: TrainingJob, history: list[dict]):
    """The training log callback: progress and live metrics on the job row, and the cancel check."""

    def report(message: str) -> None:
        try:
            entry = json.loads(message)
        except (TypeError, ValueError):
            job.log(message)
            return
        history.append(entry)
        job.log(f"epoch {entry['epoch']}: loss {entry['loss']:.3f}, val bal. acc {entry['val_balanced_accuracy']:.3f}")
        job.report_progress(entry["epoch"], 90.0 * entry["epoch"] / job.epochs, {"history": history})
        _check_cancel(job)

    return report


def _check_cancel(job: TrainingJob) -> None:
    if job.cancel_was_requested():
        raise JobCancelled


def _imbalance_of(card: dict, modes: tuple[str, ...]) -> str:
    text = str(card.get("recipe", {}).get("imbalance_handling", ""))
    return next((mode for mode in modes if f"'{mode}'" in text), "balanced")


def _headline(metrics: dict) -> dict:
    keys = ("n_images", "balanced_accuracy", "macro_f1", "melanoma_recall_at_threshold", "accuracy")
    return {key: metrics.get(key) for key in keys}
