"""Model cards: the JSON that travels beside every saved model.

A model version on disk is a folder ``<version>/`` holding ``model.keras`` and
``card.json``. The card says how to feed the model and how to read its outputs,
so servers never guess: the class order, the input size, the thresholds.
This module has no TensorFlow import; the web process reads cards too.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.classes import CLASSES
from training.malignancy import (
    SUMMED,
    TARGET_MALIGNANT_SENSITIVITY,
    MalignancyScore,
    MalignancyScoreError,
    from_card_entry,
)
from training.preprocessing import DEFAULT_GEOMETRY, GEOMETRIES

MODEL_FILENAME = "model.keras"
LITERT_FILENAME = "model.tflite"  # the LiteRT export beside it (training.export_litert)
# How a worker may serve a version: its Keras file with TensorFlow, or its LiteRT export.
INFERENCE_BACKENDS = ("keras", "litert")
CARD_FILENAME = "card.json"
MIN_INPUT_SIDE = 32  # MobileNetV2 and our CNN downsample 32x; smaller has no spatial map left


class CardError(ValueError):
    """A card is missing, unreadable, or does not describe a usable model."""


@dataclass(frozen=True)
class ModelCard:
    version: str
    classes: tuple[str, ...]
    input_size: tuple[int, int]  # (height, width)
    malignant_threshold: float
    raw: dict[str, Any] = field(repr=False, compare=False)
    # What the threshold applies to: the card's ``malignancy_score`` (none: the three malignant classes' sum).
    malignancy: MalignancyScore = SUMMED

    @property
    def metrics(self) -> dict[str, Any]:
        return self.raw.get("metrics", {})

    @property
    def target_sensitivity(self) -> float:
        """The malignant sensitivity the card's threshold was chosen for on validation (0.90 where unsaid)."""
        return float((self.raw.get("thresholds") or {}).get("target_sensitivity", TARGET_MALIGNANT_SENSITIVITY))

    @property
    def geometry(self) -> str:
        """How a picture becomes the model's input (training.preprocessing.GEOMETRIES): the card's
        ``input.geometry``; a card whose ``input`` is prose (v1-v3) means the centre crop."""
        described = self.raw.get("input")
        return described.get("geometry", DEFAULT_GEOMETRY) if isinstance(described, dict) else DEFAULT_GEOMETRY


def parse_card(data: dict[str, Any]) -> ModelCard:
    """Validate a card's dict and return it typed; raise CardError with the reason."""
    if not isinstance(data, dict):
        raise CardError("the card must be a JSON object")
    version = data.get("version")
    if not isinstance(version, str) or not version.strip():
        raise CardError("'version' must be a non-empty string")
    classes = data.get("classes")
    if not isinstance(classes, list) or sorted(classes) != sorted(CLASSES):
        raise CardError(f"'classes' must list the seven codes {list(CLASSES)} once each, in output order")
    size = data.get("input_size")
    if (
        not isinstance(size, list)
        or len(size) != 2
        or not all(isinstance(s, int) and s >= MIN_INPUT_SIDE for s in size)
    ):
        raise CardError(f"'input_size' must be [height, width], integers >= {MIN_INPUT_SIDE}")
    described = data.get("input")
    if isinstance(described, dict) and described.get("geometry") not in GEOMETRIES:
        raise CardError(f"'input.geometry' must be one of {', '.join(GEOMETRIES)}, not {described.get('geometry')!r}")
    threshold = (data.get("thresholds") or {}).get("malignant")
    if not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise CardError("'thresholds.malignant' must be a number between 0 and 1")
    target = (data.get("thresholds") or {}).get("target_sensitivity", TARGET_MALIGNANT_SENSITIVITY)
    if not isinstance(target, (int, float)) or not 0.0 < target <= 1.0:
        raise CardError("'thresholds.target_sensitivity' must be a number in (0, 1]")
    try:
        malignancy = from_card_entry(data.get("malignancy_score"))
    except MalignancyScoreError as exc:
        raise CardError(str(exc)) from exc
    return ModelCard(
        version=version.strip(),
        classes=tuple(classes),
        input_size=(size[0], size[1]),
        malignant_threshold=float(threshold),
        raw=data,
        malignancy=malignancy,
    )


def card_digest(data: dict[str, Any]) -> str:
    """A fingerprint of a card's content: equal for equal cards, whatever their key order."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def read_card(version_dir: Path | str) -> ModelCard:
    """Read and validate ``<version_dir>/card.json``."""
    path = Path(version_dir) / CARD_FILENAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CardError(f"{path} does not exist") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CardError(f"{path} is not readable JSON: {exc}") from exc
    try:
        return parse_card(data)
    except CardError as exc:
        raise CardError(f"{path}: {exc}") from exc


def write_card(version_dir: Path | str, data: dict[str, Any]) -> ModelCard:
    """Validate and write a card; returns the parsed card."""
    card = parse_card(data)
    path = Path(version_dir) / CARD_FILENAME
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return card


def find_version_dirs(model_root: Path | str) -> list[Path]:
    """Folders under ``model_root`` that hold both a model file and a card, sorted by name."""
    root = Path(model_root)
    if not root.is_dir():
        return []
    return sorted(
        child
        for child in root.iterdir()
        if child.is_dir() and (child / MODEL_FILENAME).is_file() and (child / CARD_FILENAME).is_file()
    )
