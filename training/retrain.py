"""Retrain a model's classification head on new labelled pictures: a calibrated model, its evaluation and its card.

Pipeline order: the starting point (the served version's network, or MobileNetV2
with ImageNet weights), its pooled features of every picture, the head trained on
them (phase 1 of training.train, keeping the best validation epoch), temperature
and threshold on validation and the metrics on test (training.evaluate), beside
the metrics of the version it would replace; then the out-of-distribution check
(training.fit_ood), the calibrated model and the card (training.export.make_card,
as for a shipped version). ``save_version`` writes it all as a version folder.

Which pictures, which split, progress, cancellation and the registry are the
platform's (worker/retraining.py); nothing here knows of Django.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.calibrate import softmax
from training.card import MODEL_FILENAME, ModelCard, read_card, write_card
from training.classes import CLASSES
from training.evaluate import compute_metrics, evaluate_logits
from training.export import build_calibrated_model, describe_imbalance, loss_weights_of, make_card
from training.fit_ood import fit_ood_entries
from training.malignancy import TARGET_MALIGNANT_SENSITIVITY
from training.ood import OOD_FILENAME, OodDetector, save_detector
from training.preprocessing import DEFAULT_GEOMETRY
from training.train import NO_DEADLINE, EpochReport, Recipe, class_weights, train_head

PARTS = ("train", "val", "test")
STARTS = ("active", "imagenet")
DEFAULT_INPUT_SIZE = (150, 150)  # for a fresh ImageNet start; a start from a version keeps its size
LEARNING_RATE = {"active": 3e-4, "imagenet": 1e-3}  # gentler when refining an already trained head
FEATURE_BATCH = 32


@dataclass
class Pictures:
    """The labelled pictures, part by part ("train", "val", "test")."""

    labels: dict[str, np.ndarray]  # class indices in CLASSES order
    # (part, (height, width), geometry) -> float32 RGB pixels (N, H, W, 3) in 0..255, in the labels'
    # order, through the serving path (training.preprocessing.to_model_input)
    pixels: Callable[[str, tuple[int, int], str], np.ndarray]

    def counts(self) -> dict[str, int]:
        return {part: int(len(self.labels[part])) for part in PARTS}


@dataclass
class Base:
    """The version a retrained head is measured against (and starts from, from "active")."""

    name: str
    folder: Path  # its version folder: model file and card
    malignant_threshold: float  # the threshold the site serves it with


@dataclass
class Retrained:
    model: object  # the calibrated Keras model, as it will be served
    card: dict
    ood_detector: OodDetector | None  # None when the pictures could not fit one (the card then has no "ood")
    history: list[EpochReport]
    incumbent_metrics: dict | None  # the base version's metrics on the same test pictures
    lesion_mask_file: Path | None = None  # the base's mask head, kept: it reads the same frozen network

    @property
    def test_metrics(self) -> dict:
        return self.card["metrics"]["test"]


def retrain_head(
    pictures: Pictures,
    start_from: str,
    base: Base | None,
    epochs: int,
    *,
    version: str,
    created: str,
    trained_on: dict,
    recipe_notes: dict,
    imagenet_weights: str | None,
    uncertain_below: float,
    log: Callable[[str], None],
    on_epoch: Callable[[EpochReport], None],
) -> Retrained:
    """A new head for the base version's network (``start_from`` "active") or for MobileNetV2
    with ``imagenet_weights``, trained ``epochs`` epochs on ``pictures``.

    ``trained_on`` (where the pictures came from) and ``recipe_notes`` (e.g. the job that asked)
    go into the card as they are. ``on_epoch`` gets every epoch and may raise to stop.
    """
    import keras

    if start_from not in STARTS:
        raise ValueError(f"start_from must be one of {STARTS}, not {start_from!r}")
    if start_from == "active" and base is None:
        raise ValueError("there is no version to start from")
    base_card = read_card(base.folder) if base is not None else None
    served = keras.saving.load_model(base.folder / MODEL_FILENAME, compile=False) if start_from == "active" else None
    # The geometry of what serves: a head retrained on another framing would be judged on pictures
    # it was not made for.
    geometry = base_card.geometry if base_card is not None else DEFAULT_GEOMETRY
    if served is not None:
        input_size = base_card.input_size
        logits_model, features_model, head = split_calibrated_model(served)
        base_recipe = base_card.raw.get("recipe") or {}
        # A version trained with a logit-adjusted loss keeps it: its head was fitted to
        # unweighted, prior-shifted logits, and class weights on top would count the rare
        # classes twice.
        adjustment = float(base_recipe.get("logit_adjustment") or 0.0)
        loss_weights = "none" if adjustment > 0 else loss_weights_of(base_recipe)
    else:
        from training.models import build_mobilenet_v2, feature_extractor

        input_size = DEFAULT_INPUT_SIZE
        logits_model, _, head = build_mobilenet_v2(input_size, imagenet_weights)
        features_model = feature_extractor(logits_model)
        adjustment, loss_weights = 0.0, "balanced"

    log(f"computing features at {input_size[0]}x{input_size[1]} ({geometry})")
    val_pixels = pictures.pixels("val", input_size, geometry)  # kept: the OOD check's texture bar
    features = {
        part: features_model.predict(
            val_pixels if part == "val" else pictures.pixels(part, input_size, geometry), FEATURE_BATCH, verbose=0
        )
        for part in PARTS
    }
    labels = pictures.labels

    incumbent_metrics = None
    if base is not None:
        test_pixels = pictures.pixels("test", base_card.input_size, base_card.geometry)
        probabilities = served_probabilities(base, base_card, test_pixels, served)
        incumbent_metrics = compute_metrics(
            labels["test"], probabilities, base.malignant_threshold, base_card.malignancy
        )

    recipe = Recipe(
        input_size=input_size, head_epochs=epochs, head_lr=LEARNING_RATE[start_from], logit_adjustment=adjustment
    )
    weights = class_weights(labels["train"], loss_weights)
    phase = train_head(
        head, features["train"], labels["train"], weights, features["val"], labels["val"], recipe, NO_DEADLINE, log,
        on_epoch,
    )  # fmt: skip
    log(f"best validation balanced accuracy {phase.best_score:.3f} at epoch {phase.best_epoch}")

    val_logits = head.predict(features["val"], verbose=0)
    test_logits = head.predict(features["test"], verbose=0)
    # The base's default operating point carries over: it was chosen on the shifted validation pictures,
    # which a clinic's labelled pictures cannot stand in for.
    target = base_card.target_sensitivity if base_card else TARGET_MALIGNANT_SENSITIVITY
    evaluation = evaluate_logits(val_logits, labels["val"], test_logits, labels["test"], target)

    card = make_card(
        version,
        created,
        architecture=base_card.raw.get("architecture") if served is not None else "MobileNetV2 transfer",
        keras_version=keras.__version__,
        input_size=input_size,
        geometry=geometry,
        evaluation=evaluation,
        how_measured=(
            "The test part of the labelled pictures (never used for any choice). Temperature fitted and "
            "malignant threshold chosen on the validation part. 'incumbent_test': the version it would "
            "replace, on the same test pictures, at the threshold it is served with."
        ),
        compared_with={"incumbent_test": incumbent_metrics},
        trained_on={**trained_on, "licence": _licence(start_from, base, base_card), "images": pictures.counts()},
        recipe={
            **recipe_notes,
            "start_from": start_from,
            "base_version": base.name if base else None,
            "head_epochs": epochs,
            "head_lr": recipe.head_lr,
            "imbalance": loss_weights,
            "loss_weights": loss_weights,
            "logit_adjustment": adjustment,
            "imbalance_handling": describe_imbalance(loss_weights, "shuffle", adjustment),
            "phase": "classification head retrained on frozen features",
        },
    )
    if served is not None and (base_card.raw.get("explanation") or {}).get("method") == "layer-cam":
        # The same network up to its head, so the same map; its figures were measured on the base.
        inherited = base_card.raw["explanation"]
        card["explanation"] = {
            **{key: inherited[key] for key in ("method", "layer", "grid") if key in inherited},
            "figures": None,
            "how_measured": f"not measured for this version: the map of {base.name}, whose network it keeps",
        }
    lesion_mask_file = None
    if served is not None and base_card.raw.get("lesion_mask"):
        inherited = base_card.raw["lesion_mask"]
        lesion_mask_file = base.folder / inherited["file"]
        card["lesion_mask"] = {
            **inherited,
            "how_measured": f"{base.name}'s mask head, measured there: this version keeps its network",
        }
    val_probabilities = softmax(val_logits, evaluation["temperature"])
    detector = None
    try:
        detector, card["ood"], card["uncertainty"] = fit_ood_entries(
            (features["train"], labels["train"]),
            (features["val"], val_probabilities, labels["val"], val_pixels),
            uncertain_below=uncertain_below,
        )
    except (ValueError, np.linalg.LinAlgError) as exc:
        log(f"no out-of-distribution check for this version: {exc}")
    model = build_calibrated_model(logits_model, evaluation["temperature"])
    return Retrained(model, card, detector, phase.history, incumbent_metrics, lesion_mask_file)


def _licence(start_from: str, base: Base | None, base_card: ModelCard | None) -> str:
    if start_from == "imagenet":
        return "the terms of the labelled pictures, and of the ImageNet weights it started from"
    trained_on = base_card.raw.get("trained_on")
    inherited = trained_on.get("licence") if isinstance(trained_on, dict) else None
    return f"the terms of the labelled pictures, and those of {base.name}: {inherited or 'none recorded'}"


def save_version(root: Path, retrained: Retrained) -> Path:
    """Write model, card, OOD detector and LiteRT export to a hidden folder, then rename it
    to ``root/<version>``: a crash half-way leaves no folder that looks like a version."""
    version = retrained.card["version"]
    partial = root / f".partial-{version}"
    try:
        partial.mkdir(parents=True)
        retrained.model.save(partial / MODEL_FILENAME)
        if retrained.ood_detector is not None:
            save_detector(retrained.ood_detector, partial / OOD_FILENAME)
        if retrained.lesion_mask_file is not None:
            shutil.copy2(retrained.lesion_mask_file, partial / retrained.card["lesion_mask"]["file"])
        write_card(partial, json.loads(json.dumps(retrained.card, default=float)))
        # Beside the .keras file, so the version also serves with INFERENCE_BACKEND=litert.
        from training.export_litert import export_version as export_litert

        export_litert(partial)
        final = root / version
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


def served_probabilities(base: Base, card: ModelCard, pixels: np.ndarray, served=None) -> np.ndarray:
    """The version's calibrated probabilities in CLASSES order, exactly as the inference workers compute them."""
    import keras

    model = served if served is not None else keras.saving.load_model(base.folder / MODEL_FILENAME, compile=False)
    probabilities = model.predict(pixels, batch_size=FEATURE_BATCH, verbose=0)
    order = [card.classes.index(code) for code in CLASSES]
    return probabilities[:, order]
