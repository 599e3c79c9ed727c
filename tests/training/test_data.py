"""The split: grouped by lesion, duplicates kept together, reproducible."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from tests.training.conftest import EXACT_COPY, NEAR_COPY
from training.classes import CLASSES
from training.data import (
    DEFAULT_SPLIT_FILE,
    SPLITS,
    dhash,
    group_images,
    hash_images,
    image_path,
    load_images,
    make_split,
    read_metadata,
)
from training.preprocessing import load_model_input


def _split_of(table: pd.DataFrame, image_id: str) -> str:
    return table.loc[table["image_id"] == image_id, "split"].item()


def test_no_lesion_id_is_in_two_splits(tiny_split):
    table = tiny_split["table"]
    assert (table.groupby("lesion_id")["split"].nunique() == 1).all()


def test_all_three_splits_are_used(tiny_split):
    assert set(tiny_split["table"]["split"]) == set(SPLITS)


def test_exact_and_near_duplicates_share_a_split_even_with_other_lesion_ids(tiny_split):
    table = tiny_split["table"]
    for copy_id, original_id in (EXACT_COPY, NEAR_COPY):
        assert _split_of(table, copy_id) == _split_of(table, original_id)
        groups = table.set_index("image_id")["group"]
        assert groups[copy_id] == groups[original_id]


def test_distinct_pictures_are_not_taken_for_duplicates(tiny_split):
    table = tiny_split["table"]
    # Every lesion is its own group, except the two copies that join their originals.
    assert table["group"].nunique() == table["lesion_id"].nunique() - 2


def test_a_near_duplicate_hashes_close_and_a_different_picture_far(tiny_dataset):
    data_dir = tiny_dataset["data_dir"]
    hashes = hash_images([image_path(data_dir, i) for i in (NEAR_COPY[0], NEAR_COPY[1], "ISIC_0000020")])
    distance = [bin(int(a) ^ int(b)).count("1") for a, b in zip(hashes[0], hashes[1], strict=True)]
    far = [bin(int(a) ^ int(b)).count("1") for a, b in zip(hashes[0], hashes[2], strict=True)]
    assert sum(distance) <= 10 < sum(far)


def test_dhash_ignores_a_resize():
    picture = Image.fromarray(np.random.default_rng(1).integers(0, 255, (12, 16, 3), dtype=np.uint8))
    big = picture.resize((160, 120), Image.Resampling.BICUBIC)
    smaller = picture.resize((80, 60), Image.Resampling.BICUBIC)
    assert bin(dhash(big) ^ dhash(smaller)).count("1") <= 10


def test_images_linked_through_a_chain_of_duplicates_form_one_group():
    groups = group_images(["a", "b", "c", "d", "a"], [(1, 2), (2, 3)])
    assert groups[0] == groups[4]
    assert groups[1] == groups[2] == groups[3]
    assert groups[0] != groups[1]


def _groups_by_search(lesion_ids: list[str], pairs: list[tuple[int, int]]) -> list[int]:
    """The reference: a breadth-first search over same-lesion and duplicate links, groups
    numbered in order of their first image."""
    count = len(lesion_ids)
    same_lesion = [(a, b) for a in range(count) for b in range(a) if lesion_ids[a] == lesion_ids[b]]
    neighbours: dict[int, set[int]] = {i: set() for i in range(count)}
    for i, j in [*pairs, *same_lesion]:
        neighbours[i].add(j)
        neighbours[j].add(i)
    groups: dict[int, int] = {}
    for first in range(count):
        if first in groups:
            continue
        number, waiting = len(set(groups.values())), [first]
        while waiting:
            image = waiting.pop()
            if image not in groups:
                groups[image] = number
                waiting += neighbours[image] - groups.keys()
    return [groups[i] for i in range(count)]


def test_groups_are_the_connected_images_numbered_by_their_first_image():
    rng = np.random.default_rng(5)
    for _ in range(50):
        count = int(rng.integers(1, 60))
        lesion_ids = [f"L{n}" for n in rng.integers(0, max(1, count // 2), count)]
        pairs = [(int(i), int(j)) for i, j in rng.integers(0, count, (int(rng.integers(0, count)), 2)) if i < j]
        assert group_images(lesion_ids, pairs).tolist() == _groups_by_search(lesion_ids, pairs)


def test_the_committed_splits_groups_are_its_lesions():
    """No near-duplicate pair in HAM10000 crosses lesion ids: its groups are the lesions, numbered in file order."""
    split = pd.read_csv(DEFAULT_SPLIT_FILE)
    np.testing.assert_array_equal(group_images(split["lesion_id"].tolist(), []), split["group"].to_numpy())


def test_the_same_seed_gives_the_same_split(tiny_dataset, tiny_split):
    data_dir = tiny_dataset["data_dir"]
    metadata = read_metadata(data_dir)
    hashes = hash_images([image_path(data_dir, i) for i in metadata["image_id"]])
    again = make_split(metadata, hashes)
    assert again["split"].tolist() == tiny_split["table"]["split"].tolist()


def test_cached_images_are_the_serving_preprocessing(tiny_dataset, tmp_path):
    data_dir = tiny_dataset["data_dir"]
    ids = ["ISIC_0000000", "ISIC_0000005"]
    images = load_images(data_dir, ids, (32, 32), cache_dir=tmp_path)
    again = load_images(data_dir, ids, (32, 32), cache_dir=tmp_path)  # from the cache
    served = load_model_input(image_path(data_dir, ids[1]), (32, 32))
    assert images.dtype == np.uint8
    assert images.shape == (2, 32, 32, 3)
    np.testing.assert_array_equal(images, again)
    np.testing.assert_array_equal(images[1], np.rint(served).astype(np.uint8))


def test_the_committed_split_groups_lesions_and_holds_every_class_in_every_split():
    split = pd.read_csv(DEFAULT_SPLIT_FILE)
    assert len(split) == 10015
    assert split["image_id"].is_unique
    assert (split.groupby("lesion_id")["split"].nunique() == 1).all()
    assert (split.groupby("group")["split"].nunique() == 1).all()
    shares = split["split"].value_counts(normalize=True)
    assert abs(shares["train"] - 0.70) < 0.02
    assert abs(shares["test"] - 0.15) < 0.02
    for name in SPLITS:
        assert set(split.loc[split["split"] == name, "dx"]) == set(CLASSES)
    assert Path(DEFAULT_SPLIT_FILE).stat().st_size < 1_000_000  # ids only, never the data
