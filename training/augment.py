"""Training-time augmentation: random rotations, shifts, zooms and flips, optionally colour.

It runs inside the tf.data training pipeline, never inside the saved model, so a
served model cannot augment by accident and inference is deterministic.
"""

from __future__ import annotations

# Dermatoscopic pictures have no "up": any rotation or mirror is a plausible picture
# of the same lesion. Shifts and zooms stay small because the lesion is centred
# and the centre crop must keep it in view.
ROTATION_FACTOR = 0.5  # fraction of a full turn either way: any angle
SHIFT_FACTOR = 0.1
ZOOM_FACTOR = 0.15
# Colour: the same lesion photographed with another dermatoscope, light or camera
# (another centre) differs in overall brightness and per-channel gain. Contrast acts on
# each channel separately, so it also shifts the colour balance.
BRIGHTNESS_FACTOR = 0.1  # +-10 % of the 0-255 range
CONTRAST_FACTOR = 0.2  # per channel, x -> (x - mean) * [0.8, 1.2] + mean
# No RandomSaturation: in Keras 3.15 it returns values far below 0 for saturated pixels.


def describe_augmentation(color: bool) -> str:
    """The augmentation in words, for the model card."""
    geometry = "random flips (both axes), rotation (any angle), shifts 10 %, zoom 15 %"
    if color:
        geometry += ", brightness +-10 %, per-channel contrast +-20 %"
    return geometry + " - training only"


def make_augmentation(seed: int | None = None, color: bool = False):
    """A Sequential of Random* layers; they only act when called with training=True."""
    import keras  # here, so the card code can describe the augmentation without TensorFlow

    layers = [
        keras.layers.RandomFlip("horizontal_and_vertical", seed=seed),
        keras.layers.RandomRotation(ROTATION_FACTOR, fill_mode="reflect", seed=seed),
        keras.layers.RandomTranslation(SHIFT_FACTOR, SHIFT_FACTOR, fill_mode="reflect", seed=seed),
        keras.layers.RandomZoom((-ZOOM_FACTOR, ZOOM_FACTOR), fill_mode="reflect", seed=seed),
    ]
    if color:
        layers += [
            keras.layers.RandomBrightness(BRIGHTNESS_FACTOR, value_range=(0, 255), seed=seed),
            keras.layers.RandomContrast(CONTRAST_FACTOR, value_range=(0, 255), seed=seed),
        ]
    return keras.Sequential(layers, name="augmentation")
