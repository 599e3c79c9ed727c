"""A tiny generated HAM10000 look-alike: a few small images per class, some lesions
photographed twice, one exact copy and one re-encoded copy filed under other lesion ids."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageEnhance

from training.classes import CLASSES

IMAGES_PER_CLASS = 8
IMAGE_SIZE = (80, 60)  # (width, height): HAM10000's 4:3

# Pictures filed under a different lesion_id than the picture they copy.
EXACT_COPY = ("ISIC_9000000", "ISIC_0000001")  # (copy, original)
NEAR_COPY = ("ISIC_9000001", "ISIC_0000010")


def _picture(rng: np.random.Generator, class_index: int) -> Image.Image:
    """A blurry blob of random colours, tinted per class so a model has something to learn."""
    blocks = rng.uniform(0, 255, (9, 12, 3))
    blocks[..., class_index % 3] = 40 + 30 * class_index
    small = Image.fromarray(blocks.astype(np.uint8))
    return small.resize(IMAGE_SIZE, Image.Resampling.BICUBIC)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("ham_tiny")
    (root / "images").mkdir()
    rng = np.random.default_rng(0)
    rows = []
    number = 0
    for class_index, code in enumerate(CLASSES):
        for i in range(IMAGES_PER_CLASS):
            image_id = f"ISIC_{number:07d}"
            # Images 0-1, 2-3 of every class show the same lesion: two pictures each.
            lesion_id = f"HAM_{class_index}_{i // 2 if i < 4 else i}"
            _picture(rng, class_index).save(root / "images" / f"{image_id}.jpg", quality=95)
            rows.append({"lesion_id": lesion_id, "image_id": image_id, "dx": code})
            number += 1

    copy_id, original_id = EXACT_COPY
    original = next(row for row in rows if row["image_id"] == original_id)
    (root / "images" / f"{copy_id}.jpg").write_bytes((root / "images" / f"{original_id}.jpg").read_bytes())
    rows.append({"lesion_id": "HAM_copy", "image_id": copy_id, "dx": original["dx"]})

    copy_id, original_id = NEAR_COPY
    original = next(row for row in rows if row["image_id"] == original_id)
    with Image.open(root / "images" / f"{original_id}.jpg") as image:
        brighter = ImageEnhance.Brightness(image.convert("RGB")).enhance(1.05)
        brighter.save(root / "images" / f"{copy_id}.jpg", quality=85)
    rows.append({"lesion_id": "HAM_near_copy", "image_id": copy_id, "dx": original["dx"]})

    metadata = pd.DataFrame(rows)
    metadata["dx_type"], metadata["age"], metadata["sex"], metadata["localization"] = "histo", 50.0, "male", "back"
    metadata.to_csv(root / "HAM10000_metadata.csv", index=False)
    return {"data_dir": root, "metadata": metadata}


@pytest.fixture(scope="session")
def tiny_split(tiny_dataset, tmp_path_factory):
    """The split table of the tiny dataset, also written to a CSV like the real one."""
    from training.data import hash_images, image_path, make_split, read_metadata, write_split

    data_dir = tiny_dataset["data_dir"]
    metadata = read_metadata(data_dir)
    hashes = hash_images([image_path(data_dir, i) for i in metadata["image_id"]])
    split = make_split(metadata, hashes)
    path = tmp_path_factory.mktemp("split") / "split.csv"
    write_split(split, path)
    return {"table": split, "path": path}


@pytest.fixture(scope="session")
def lesion_dataset(tmp_path_factory) -> dict:
    """Generated pictures with exact lesion masks in HAM10000's layout, and a split CSV (tests/training/lesions.py)."""
    from tests.training.lesions import write_lesion_dataset

    return write_lesion_dataset(tmp_path_factory.mktemp("ham_lesions"))


@pytest.fixture(scope="session")
def nested_version(lesion_dataset, tmp_path_factory):
    """A tiny model version shaped like the shipped ones, with an out-of-distribution check fitted on the pictures."""
    import keras

    from tests.training.lesions import NESTED_INPUT_SIZE, save_nested_version
    from training.data import image_path
    from training.fit_ood import features_and_probabilities, fit_ood_entries, write_ood
    from training.preprocessing import load_model_input

    folder = save_nested_version(tmp_path_factory.mktemp("lesion-models"), "tiny-nested")
    model = keras.saving.load_model(folder / "model.keras", compile=False)
    ids = lesion_dataset["table"]["image_id"]
    pixels = np.stack([load_model_input(image_path(lesion_dataset["data_dir"], i), NESTED_INPUT_SIZE) for i in ids])
    features, probabilities = features_and_probabilities(model, pixels)
    labels = np.arange(len(pixels)) % len(CLASSES)  # every class present; the pictures are alike anyway
    detector, ood, uncertainty = fit_ood_entries((features, labels), (features, probabilities, labels, pixels))
    write_ood(folder, detector, ood, uncertainty)
    return folder
