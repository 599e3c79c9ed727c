"""Locating the lesion (training.lesion_mask): grid targets, the lesion's box, fitting a head, the framing report."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from tests.tiny_model import tiny_card
from training.card import parse_card
from training.lesion_mask import MASK_FILENAME, iou, lesion_box, lesion_grid, to_picture_box


def square_mask(size=(200, 150), box=(50, 30, 150, 120)) -> Image.Image:
    mask = Image.new("L", size, 0)
    mask.paste(255, box)
    return mask


def test_the_grid_targets_are_each_cells_lesion_share_of_what_the_model_sees():
    squash = lesion_grid(square_mask(), (150, 150), "squash", (10, 10))
    crop = lesion_grid(square_mask(), (150, 150), "centre_crop", (10, 10))

    assert squash.shape == crop.shape == (10, 10)
    assert squash.mean() == pytest.approx(100 * 90 / (200 * 150), abs=0.02)  # the whole picture
    assert crop.mean() == pytest.approx(100 * 90 / (150 * 150), abs=0.02)  # only the centre square
    assert squash[0, 0] == 0 and squash[5, 5] == 1


def test_the_box_widens_the_lesion_by_a_margin_stays_in_the_frame_and_is_never_a_speck():
    grid = np.zeros((10, 10))
    grid[4:6, 4:6] = 0.9  # a small lesion in the middle: 0.4-0.6 each way
    assert lesion_box(grid, margin=0.25, min_side=0.0) == pytest.approx((0.35, 0.35, 0.65, 0.65))
    assert lesion_box(grid, margin=0.0, min_side=0.5) == pytest.approx((0.25, 0.25, 0.75, 0.75))
    grid[:, :] = 0
    grid[0:3, 0:3] = 0.8  # in a corner: the widened box slides back inside
    left, top, right, bottom = lesion_box(grid, margin=0.5, min_side=0.0)
    assert (left, top) == (0.0, 0.0) and right == pytest.approx(0.6) and bottom == pytest.approx(0.6)
    assert lesion_box(np.zeros((10, 10))) == (0.0, 0.0, 1.0, 1.0)  # nothing found: the whole picture


def test_a_box_in_the_model_input_maps_back_onto_the_picture_through_the_geometry():
    crop = parse_card(tiny_card("v-crop"))
    squash = parse_card({**tiny_card("v-squash"), "input": {"geometry": "squash"}})

    # The centre crop of a 200x150 picture shows its middle 150 columns (fractions 0.125-0.875).
    assert to_picture_box((0.0, 0.0, 1.0, 1.0), (200, 150), crop) == pytest.approx((0.125, 0.0, 0.875, 1.0))
    assert to_picture_box((0.5, 0.5, 1.0, 1.0), (200, 150), squash) == (0.5, 0.5, 1.0, 1.0)


def test_iou_counts_overlap_over_union():
    a, b = np.zeros((4, 4), bool), np.zeros((4, 4), bool)
    a[:2], b[1:3] = True, True
    assert iou(a, b) == pytest.approx(4 / 12)
    assert iou(np.zeros((2, 2), bool), np.zeros((2, 2), bool)) == 1.0


def test_a_mask_head_is_fitted_saved_and_described_in_the_card(nested_version, lesion_dataset, tmp_path):
    import keras

    from tests.training.lesions import EARLY_LAYER
    from training.card import read_card
    from training.lesion_mask import fit_version, load_mask_model

    folder = tmp_path / "version"
    shutil.copytree(nested_version, folder)

    entry = fit_version(folder, str(lesion_dataset["data_dir"]), str(lesion_dataset["split_file"]), EARLY_LAYER)

    card = json.loads((folder / "card.json").read_text())
    assert card["lesion_mask"] == entry and entry["layer"] == EARLY_LAYER and entry["grid"] == [24, 24]
    assert 0.0 <= entry["val_iou_mean"] <= 1.0
    assert 0.0 <= entry["val_area_mean_abs_error"] <= 1.0
    head = keras.saving.load_model(folder / MASK_FILENAME, compile=False)  # the head alone, not a copy of the network
    assert tuple(head.input_shape[1:3]) == (24, 24) and tuple(head.output_shape[1:]) == (24, 24)
    mask = load_mask_model(folder, read_card(folder))
    assert tuple(mask.output_shape[1:]) == (24, 24)


def test_the_framing_report_compares_the_whole_picture_with_the_framed_one(nested_version, lesion_dataset, tmp_path):
    from tests.training.lesions import EARLY_LAYER
    from training.lesion_mask import fit_version, framing_report

    folder = tmp_path / "version"
    shutil.copytree(nested_version, folder)
    fit_version(folder, str(lesion_dataset["data_dir"]), str(lesion_dataset["split_file"]), EARLY_LAYER)

    report = framing_report(folder, str(lesion_dataset["data_dir"]), str(lesion_dataset["split_file"]),
                            ["zoom_out_vignette"], limit=None)  # fmt: skip

    assert set(report["conditions"]) == {"whole", "framed"}
    assert set(report["conditions"]["framed"]) == {"clean", "zoom_out_vignette"}
    assert 0.0 <= report["mean_over_shifts"]["framed"]["balanced_accuracy"] <= 1.0
