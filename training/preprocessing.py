"""Turning a decoded picture into the array a model takes.

Training and serving both call ``to_model_input`` so the geometry (crop and
resize) cannot drift apart; scaling of pixel values lives inside the saved
model. Pillow and NumPy only: the web process may import this module.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

# Bilinear: what the HAM10000 publisher's downscale and Keras' Resizing use.
RESAMPLE = Image.Resampling.BILINEAR


def to_model_input(image: Image.Image, input_size: tuple[int, int]) -> np.ndarray:
    """Return float32 RGB pixels in 0..255 of shape (height, width, 3).

    The picture is centre-cropped to the input's aspect ratio, then resized:
    a lesion is photographed centred, and cropping keeps its shape undistorted.
    """
    height, width = input_size
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    if rgb.size != (width, height):
        rgb = ImageOps.fit(rgb, (width, height), method=RESAMPLE)
    return np.asarray(rgb, dtype=np.float32)


def load_model_input(path, input_size: tuple[int, int]) -> np.ndarray:
    """Open an image file and return ``to_model_input`` of it."""
    with Image.open(path) as image:
        image.load()
        return to_model_input(image, input_size)


def crop_box(image_size: tuple[int, int], input_size: tuple[int, int]) -> tuple[float, float, float, float]:
    """The part of a (width, height) picture that ``to_model_input`` keeps, as fractions (left, top, right, bottom).

    A heatmap over the model's input covers this box of the picture, not all of it.
    """
    width, height = image_size
    target_height, target_width = input_size
    picture_ratio, target_ratio = width / height, target_width / target_height
    if abs(picture_ratio - target_ratio) < 1e-9:
        return (0.0, 0.0, 1.0, 1.0)
    if picture_ratio > target_ratio:  # wider than the input: the sides are cut, centred
        kept = target_ratio / picture_ratio
        return ((1 - kept) / 2, 0.0, (1 + kept) / 2, 1.0)
    kept = picture_ratio / target_ratio
    return (0.0, (1 - kept) / 2, 1.0, (1 + kept) / 2)
