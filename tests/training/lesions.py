"""Generated dermatoscope-like pictures with their lesion masks, and a tiny model with a nested base.

A picture is pale skin with fine texture and a few hairs, and one dark-brown ellipse
(the lesion) whose mask is known exactly; the folder written by
``write_lesion_dataset`` has HAM10000's layout (metadata CSV, images/, masks/) and a
split CSV, so the robustness and explanation commands run on it end to end.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFilter

from tests.tiny_model import tiny_card
from training.card import MODEL_FILENAME, write_card
from training.classes import CLASSES

PICTURE_SIZE = (200, 150)  # (width, height), as HAM10000's copies
SKIN = (225, 180, 170)
LESION = (95, 45, 30)
NESTED_INPUT_SIZE = (48, 48)
EARLY_LAYER = "early_relu"  # 24x24 at 48 px
LATE_LAYER = "late_relu"  # 12x12: the feature maps the pooling reads


def lesion_picture(
    rng: np.random.Generator,
    centre: tuple[float, float] | None = None,
    axes: tuple[float, float] = (40, 28),
    angle: float = 0.0,
    size: tuple[int, int] = PICTURE_SIZE,
) -> tuple[Image.Image, Image.Image]:
    """(picture RGB, mask L) with the lesion an ellipse of these half-axes, turned by ``angle`` degrees."""
    width, height = size
    centre = centre or (width / 2, height / 2)
    skin = np.array(SKIN, dtype=np.float64) + rng.normal(0, 4, (height, width, 3))
    picture = Image.fromarray(np.clip(skin, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    for _ in range(3):  # hairs
        x0, y0, x1, y1 = rng.uniform(0, 1, 4) * [width, height, width, height]
        draw.line([(x0, y0), (x1, y1)], fill=(60, 40, 35), width=1)
    mask = _ellipse(size, centre, axes, angle)
    lesion = np.asarray(mask.filter(ImageFilter.GaussianBlur(1.0)), dtype=np.float64)[..., None] / 255
    pixels = np.asarray(picture, dtype=np.float64) * (1 - lesion) + np.array(LESION) * lesion
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8)), mask


def _ellipse(size, centre, axes, angle) -> Image.Image:
    width, height = size
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    turn = np.radians(angle)
    u = (xs - centre[0]) * np.cos(turn) + (ys - centre[1]) * np.sin(turn)
    v = -(xs - centre[0]) * np.sin(turn) + (ys - centre[1]) * np.cos(turn)
    inside = (u / axes[0]) ** 2 + (v / axes[1]) ** 2 <= 1
    return Image.fromarray(np.where(inside, 255, 0).astype(np.uint8), mode="L")


def write_lesion_dataset(root: Path, per_class: int = 4, seed: int = 0) -> dict:
    """HAM10000's layout with generated pictures: ``per_class`` images of each class, half train, half val."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rows = []
    for code in CLASSES:
        for i in range(per_class):
            image_id = f"ISIC_{len(rows):07d}"
            centre = (100 + rng.uniform(-15, 15), 75 + rng.uniform(-10, 10))
            axes = (rng.uniform(25, 45), rng.uniform(18, 30))
            picture, mask = lesion_picture(rng, centre, axes, angle=rng.uniform(-20, 20))
            picture.save(root / "images" / f"{image_id}.jpg", quality=95)
            mask.save(root / "masks" / f"{image_id}.png")
            split = "val" if i % 2 else "train"
            rows.append({"lesion_id": f"HAM_{image_id}", "image_id": image_id, "dx": code, "split": split})
    table = pd.DataFrame(rows)
    table[["lesion_id", "image_id", "dx"]].to_csv(root / "HAM10000_metadata.csv", index=False)
    table["group"] = range(len(table))
    split_file = root / "split.csv"
    table[["image_id", "lesion_id", "dx", "group", "split"]].to_csv(split_file, index=False)
    return {"data_dir": root, "split_file": split_file, "table": table}


def save_nested_version(model_root: Path, version: str, seed: int = 0) -> Path:
    """A tiny model shaped like the shipped ones: a nested base (two strided convolutions), then the served head."""
    import keras

    keras.utils.set_random_seed(seed)
    height, width = NESTED_INPUT_SIZE
    base_inputs = keras.Input((height, width, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="early_conv")(base_inputs)
    x = keras.layers.ReLU(name=EARLY_LAYER)(x)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", name="late_conv")(x)
    base = keras.Model(base_inputs, keras.layers.ReLU(name=LATE_LAYER)(x), name="tiny_base")

    inputs = keras.Input((height, width, 3), name="pixels")
    x = base(keras.layers.Rescaling(1 / 127.5, offset=-1, name="to_minus1_1")(inputs))
    features = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    logits = keras.layers.Dense(len(CLASSES), name="logits")(keras.layers.Dropout(0.2, name="head_dropout")(features))
    scaled = keras.layers.Rescaling(1.0, name="temperature_scaling")(logits)
    model = keras.Model(inputs, keras.layers.Softmax(name="probabilities")(scaled))
    folder = model_root / version
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / MODEL_FILENAME)
    card = tiny_card(version)
    card["input_size"] = list(NESTED_INPUT_SIZE)
    write_card(folder, card)
    return folder
