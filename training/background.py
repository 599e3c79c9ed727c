"""Background cut-out: a training picture's surroundings replaced, so its class must come from the lesion.

A network can learn HAM10000's backgrounds (the skin around a lesion, a ruler, hair, one
device's vignette) as much as its lesions, and another centre's backgrounds differ. With
the lesion masks, fine-tuning can show some pictures with everything outside the lesion
and a margin of skin replaced by a smooth, skin-coloured field: nothing outside the lesion
then tells the class. It runs before the framing augmentation (training.framing), on
pictures at the training scale, so a cut-out picture is then zoomed, shifted and
recoloured like any other.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from training.lesion_mask import LESION_LEVEL
from training.robustness import mask_path

MARGIN_PX = 6  # default skin kept around the lesion (the border is a feature: ABCD's "B")
EDGE_SIGMA = 2.0  # px: a soft seam, not a cut a network could learn to look for
SHADING = 0.08  # the field's low-frequency brightness variation, as skin under a dermatoscope's light


def describe_cutout(probability: float, margin_px: int = MARGIN_PX) -> str:
    return (
        f"background cut-out (training.background, p {probability}): outside the lesion mask and a "
        f"{margin_px} px margin, the picture replaced by its background's mean colour with a smooth "
        f"+-{SHADING:.0%} shading, seam blurred (sigma {EDGE_SIGMA} px); before the framing augmentation"
    )


def load_masks(data_dir: Path | str, image_ids: list[str], size: tuple[int, int]) -> np.ndarray:
    """uint8 (N, H, W) lesion masks for ``image_ids`` at ``size`` (height, width), from ``<data_dir>/masks``."""
    height, width = size
    masks = np.empty((len(image_ids), height, width), dtype=np.uint8)
    for i, image_id in enumerate(image_ids):
        path = mask_path(data_dir, image_id)
        if not path.is_file():
            raise FileNotFoundError(f"background cut-out needs a lesion mask for every picture: {path} is missing")
        with Image.open(path) as mask:
            masks[i] = np.asarray(mask.convert("L").resize((width, height), Image.Resampling.BILINEAR))
    return masks


def cut_background(picture, mask, margin_px: int = MARGIN_PX):
    """``picture`` (H, W, 3) float32 0..255 with everything beyond the lesion ``mask`` (H, W) uint8
    and ``margin_px`` of skin around it replaced by a smooth field of the background's mean colour. A picture whose
    mask has no lesion (or no background) comes back unchanged."""
    import tensorflow as tf

    from training.framing import blur

    lesion = tf.cast(mask >= LESION_LEVEL, tf.float32)[None, ..., None]
    size = 2 * margin_px + 1
    kept = tf.nn.max_pool2d(lesion, size, 1, "SAME")[0]  # the lesion grown by the margin
    keep = tf.clip_by_value(blur(tf.tile(kept, [1, 1, 3]), EDGE_SIGMA)[..., :1], 0.0, 1.0)
    background = 1.0 - kept
    area = tf.reduce_sum(background)
    colour = tf.reduce_sum(picture * background, axis=[0, 1]) / tf.maximum(area, 1.0)
    shape = tf.shape(picture)
    coarse = tf.random.uniform([1, 3, 4, 1], -SHADING, SHADING)
    shading = tf.image.resize(coarse, shape[:2], method="bicubic")[0]
    field = colour * (1.0 + shading)
    cut = keep * picture + (1.0 - keep) * field
    usable = (tf.reduce_sum(lesion) > 0) & (area > 0)
    return tf.where(usable, tf.clip_by_value(cut, 0.0, 255.0), picture)
