"""Turning a decoded picture into the array a model takes.

Training and serving both call these functions so that the geometry (framing and
resize) cannot drift apart; scaling of pixel values lives inside the saved model.
Pillow and NumPy only: the web process may import this module.

Every picture goes the same way, whatever resolution it arrives at:

1. ``to_source_scale``: one antialiased downscale to the scale of the pictures every
   version was trained on, HAM10000's copies (200x150, made by their publisher from
   600x450 originals). A 24-megapixel upload and its 200-pixel copy then reach the
   model alike: without it, the model saw a 4000x3000 picture shrunk 20-fold in one
   step, sharper and differently textured than anything it learned from.
2. The version's **geometry** (its card's ``input.geometry``): how that picture becomes
   the model's (H, W) input. Each geometry also gives the part of the picture the input
   shows, so a heatmap over the input is placed on the right pixels.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageOps

# Bilinear: what Keras' Resizing uses; Pillow's resize with it is antialiased when shrinking
# (its filter widens with the factor), so the one big step in to_source_scale does not alias.
RESAMPLE = Image.Resampling.BILINEAR
# The shorter side of HAM10000's copies (200x150): the scale every training picture had.
SOURCE_SHORT_SIDE = 150
SOURCE_SIZE = (150, 200)  # (height, width) of those copies: what training.framing reframes

Box = tuple[float, float, float, float]  # left, top, right, bottom, as fractions of the picture


def to_source_scale(image: Image.Image, short_side: int = SOURCE_SHORT_SIDE) -> Image.Image:
    """The picture downscaled in one antialiased step so that its shorter side is ``short_side``;
    a picture already at or below that scale is returned as it is (never enlarged)."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    scale = short_side / min(rgb.size)
    if scale >= 1.0:
        return rgb
    size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
    return rgb.resize(size, RESAMPLE)


# --- geometries: (the model's pixels from a source-scale picture, the box they show) ----------


def centre_crop(image: Image.Image, input_size: tuple[int, int]) -> np.ndarray:
    """Centre-cropped to the input's aspect ratio, then resized: the lesion keeps its shape,
    the picture's sides are cut (v1-v3's geometry)."""
    height, width = input_size
    if image.size != (width, height):
        image = ImageOps.fit(image, (width, height), method=RESAMPLE)
    return np.asarray(image, dtype=np.float32)


def crop_box(image_size: tuple[int, int], input_size: tuple[int, int]) -> Box:
    """The part of a (width, height) picture that ``centre_crop`` keeps."""
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


def squash(image: Image.Image, input_size: tuple[int, int]) -> np.ndarray:
    """The whole picture resized to the input, whatever its aspect ratio: nothing is cut,
    a lesion that fills the frame stays whole (a 4:3 picture is narrowed by a quarter)."""
    height, width = input_size
    if image.size != (width, height):
        image = image.resize((width, height), RESAMPLE)
    return np.asarray(image, dtype=np.float32)


def whole_box(image_size: tuple[int, int], input_size: tuple[int, int]) -> Box:
    return (0.0, 0.0, 1.0, 1.0)


def pad(image: Image.Image, input_size: tuple[int, int]) -> np.ndarray:
    """The whole picture letterboxed with black to the input's aspect ratio (as a dermatoscope's
    dark surround), then resized: nothing cut, nothing distorted; the lesion comes out smaller."""
    width, height = image.size
    canvas_size = _padded_size(image.size, input_size)
    if canvas_size != image.size:
        canvas = Image.new("RGB", canvas_size, (0, 0, 0))
        canvas.paste(image, ((canvas_size[0] - width) // 2, (canvas_size[1] - height) // 2))
        image = canvas
    return squash(image, input_size)


def _padded_size(image_size: tuple[int, int], input_size: tuple[int, int]) -> tuple[int, int]:
    width, height = image_size
    target_ratio = input_size[1] / input_size[0]
    if width / height > target_ratio:
        return width, max(height, round(width / target_ratio))
    return max(width, round(height * target_ratio)), height


def pad_box(image_size: tuple[int, int], input_size: tuple[int, int]) -> Box:
    """What ``pad`` shows, as fractions of the picture: more than all of it (the black bands lie outside 0..1)."""
    width, height = image_size
    canvas_width, canvas_height = _padded_size(image_size, input_size)
    left = ((canvas_width - width) // 2) / width
    top = ((canvas_height - height) // 2) / height
    return (-left, -top, (canvas_width - width) / width - left + 1, (canvas_height - height) / height - top + 1)


DEFAULT_GEOMETRY = "centre_crop"  # cards without input.geometry (v1-v3) were trained with it
GEOMETRIES: dict[str, tuple[Callable[[Image.Image, tuple[int, int]], np.ndarray], Callable[..., Box]]] = {
    "centre_crop": (centre_crop, crop_box),
    "squash": (squash, whole_box),
    "pad": (pad, pad_box),
}


def check_geometry(name: str) -> str:
    if name not in GEOMETRIES:
        raise ValueError(f"unknown input geometry {name!r}; known: {', '.join(GEOMETRIES)}")
    return name


def to_model_input(image: Image.Image, input_size: tuple[int, int], geometry: str = DEFAULT_GEOMETRY) -> np.ndarray:
    """float32 RGB pixels (H, W, 3) in 0..255: the picture at the training scale, then the geometry."""
    frame, _ = GEOMETRIES[check_geometry(geometry)]
    return frame(to_source_scale(image), input_size)


def input_box(image_size: tuple[int, int], input_size: tuple[int, int], geometry: str = DEFAULT_GEOMETRY) -> Box:
    """The part of a (width, height) picture that ``to_model_input`` shows the model, as fractions."""
    _, box = GEOMETRIES[check_geometry(geometry)]
    return box(image_size, input_size)


def load_model_input(path, input_size: tuple[int, int], geometry: str = DEFAULT_GEOMETRY) -> np.ndarray:
    """Open an image file and return ``to_model_input`` of it."""
    with Image.open(path) as image:
        image.load()
        return to_model_input(image, input_size, geometry)
