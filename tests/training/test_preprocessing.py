"""One resize path for every upload: the training scale first, then the version's geometry."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from training.preprocessing import (
    SOURCE_SHORT_SIDE,
    crop_box,
    input_box,
    to_model_input,
    to_source_scale,
    whole_box,
)


def lesion_photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """A smooth drawn lesion at any resolution: the same scene, sampled more or less finely."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / np.array([height, width])[:, None, None]
    radius = np.hypot((xx - 0.52) / 0.22, (yy - 0.48) / 0.3)
    pigment = np.clip(1.2 - radius, 0, 1)[..., None]
    skin, brown = np.array([215.0, 160, 135]), np.array([95.0, 60, 45])
    ripples = 12 * np.sin(40 * xx + rng.uniform(0, 6))[..., None] * np.sin(33 * yy)[..., None]
    pixels = skin * (1 - pigment) + brown * pigment + ripples
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def test_a_picture_comes_down_to_the_training_scale_in_one_step_and_is_never_enlarged():
    big, small = lesion_photo(4000, 3000), lesion_photo(120, 90)

    assert to_source_scale(big).size == (200, SOURCE_SHORT_SIDE)
    assert to_source_scale(lesion_photo(1920, 1080)).size == (267, 150)  # the aspect ratio is kept
    assert to_source_scale(small).size == (120, 90)


@pytest.mark.parametrize("geometry", ["centre_crop", "squash", "pad"])
def test_a_24_megapixel_original_and_its_200_pixel_copy_reach_the_model_alike(geometry):
    original = lesion_photo(6000, 4500)
    copy = original.resize((200, 150), Image.Resampling.LANCZOS)  # as a publisher's downscaled copy

    from_original = to_model_input(original, (150, 150), geometry)
    from_copy = to_model_input(copy, (150, 150), geometry)

    assert from_original.shape == from_copy.shape == (150, 150, 3)
    assert np.abs(from_original - from_copy).mean() < 1.5  # of 255: the two resize paths barely differ
    one_step = np.asarray(original.resize((150, 150), Image.Resampling.NEAREST), dtype=np.float32)
    assert np.abs(one_step - from_copy).mean() > np.abs(from_original - from_copy).mean()  # the check can fail


def test_the_geometries_say_which_part_of_the_picture_the_model_sees():
    assert input_box((200, 150), (150, 150), "centre_crop") == crop_box((200, 150), (150, 150)) == (0.125, 0, 0.875, 1)
    assert input_box((200, 150), (150, 150), "squash") == whole_box((200, 150), (150, 150)) == (0, 0, 1, 1)
    squashed = to_model_input(lesion_photo(200, 150), (150, 150), "squash")
    cropped = to_model_input(lesion_photo(200, 150), (150, 150), "centre_crop")
    assert squashed.shape == cropped.shape and not np.array_equal(squashed, cropped)


def test_padding_shows_the_whole_picture_undistorted_between_black_bands_outside_it():
    white = Image.new("RGB", (200, 150), (255, 255, 255))

    pixels = to_model_input(white, (150, 150), "pad")  # 200x150 on a 200x200 black canvas, then 150x150

    assert pixels.shape == (150, 150, 3)
    assert pixels[:18].max() == 0 and pixels[133:].max() == 0 and pixels[20:130].min() == 255
    left, top, right, bottom = input_box((200, 150), (150, 150), "pad")
    assert (left, right) == (0, 1) and top == pytest.approx(-25 / 150) and bottom == pytest.approx(175 / 150)
    # The picture's top edge sits where the box puts it in the input: 25 of the canvas's 200 rows down.
    assert (0 - top) / (bottom - top) * 150 == pytest.approx(18.75)
    assert input_box((150, 150), (150, 150), "pad") == (0, 0, 1, 1)


def test_an_unknown_geometry_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown input geometry 'fisheye'"):
        to_model_input(lesion_photo(200, 150), (150, 150), "fisheye")


def test_a_training_copy_is_unchanged_by_the_scale_step():
    # HAM10000's 200x150 copies are at the training scale: their model input is what it always was.
    copy = lesion_photo(200, 150)
    expected = np.asarray(copy.crop((25, 0, 175, 150)), dtype=np.float32)
    assert np.array_equal(to_model_input(copy, (150, 150)), expected)
