"""A small but real Keras model saved as a model version, for tests.

Its predictions are genuine outputs of a (randomly initialised) network: the
platform's tests check the plumbing, not the accuracy. The trained model ships in
models/ and is evaluated by training/.
"""

from __future__ import annotations

from pathlib import Path

from training.card import MODEL_FILENAME, write_card
from training.classes import CLASSES

TINY_INPUT_SIZE = (32, 32)


def tiny_card(version: str, created: str = "2026-01-01T00:00:00Z", threshold: float = 0.5) -> dict:
    return {
        "version": version,
        "created": created,
        "architecture": "tiny test CNN (random weights)",
        "classes": list(CLASSES),
        "input_size": list(TINY_INPUT_SIZE),
        "thresholds": {"malignant": threshold},
        "metrics": {},
        "trained_on": "nothing: a test fixture",
    }


def save_tiny_version(model_root: Path, version: str, seed: int = 0, **card_fields) -> Path:
    """Build, save and describe a tiny CNN under ``model_root/version``."""
    import keras

    keras.utils.set_random_seed(seed)
    height, width = TINY_INPUT_SIZE
    # Layer names as in training.models + training.export, so retraining can split it the same way.
    inputs = keras.Input((height, width, 3), name="pixels")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    features = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    logits = keras.layers.Dense(len(CLASSES), name="logits")(keras.layers.Dropout(0.2, name="head_dropout")(features))
    scaled = keras.layers.Rescaling(1.0, name="temperature_scaling")(logits)
    model = keras.Model(inputs, keras.layers.Softmax(name="probabilities")(scaled))
    folder = model_root / version
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / MODEL_FILENAME)
    write_card(folder, tiny_card(version, **card_fields))
    return folder


def write_card_only(model_root: Path, version: str, **card_fields) -> Path:
    """A version folder with a card and a placeholder model file (for registry tests that never load it)."""
    folder = model_root / version
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MODEL_FILENAME).write_bytes(b"not loaded by this test")
    write_card(folder, tiny_card(version, **card_fields))
    return folder
