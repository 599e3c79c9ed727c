"""Training-time augmentation: random rotations, shifts, zooms and flips.

It runs inside the tf.data training pipeline, never inside the saved model, so a
served model cannot augment by accident and inference is deterministic.
"""

from __future__ import annotations

import keras

# Dermatoscopic pictures have no "up": any rotation or mirror is a plausible picture
# of the same lesion. Shifts and zooms stay small because the lesion is centred
# and the centre crop must keep it in view.
ROTATION_FACTOR = 0.5  # fraction of a full turn either way: any angle
SHIFT_FACTOR = 0.1
ZOOM_FACTOR = 0.15


def make_augmentation(seed: int | None = None) -> keras.Sequential:
    """A Sequential of Random* layers; they only act when called with training=True."""
    return keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal_and_vertical", seed=seed),
            keras.layers.RandomRotation(ROTATION_FACTOR, fill_mode="reflect", seed=seed),
            keras.layers.RandomTranslation(SHIFT_FACTOR, SHIFT_FACTOR, fill_mode="reflect", seed=seed),
            keras.layers.RandomZoom((-ZOOM_FACTOR, ZOOM_FACTOR), fill_mode="reflect", seed=seed),
        ],
        name="augmentation",
    )
