"""Picture shifts: valid pictures, deterministic for a seed, and the mask moving with the lesion."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.training.lesions import LESION, lesion_picture
from training.shifts import SHIFTS, apply_shift, lesion_centroid, lesion_pixels

# Shifts that draw nothing from the generator: the same picture whatever the seed.
SEEDLESS = {"square_crop", "wide_crop", "jpeg_50"}
# Shifts that move pixels: the lesion's colour must sit where the mask says.
GEOMETRIC = ["zoom_in", "zoom_out_vignette", "off_centre", "overflow", "rotated", "square_crop", "wide_crop"]
GEOMETRIC += ["high_resolution"]


@pytest.fixture(scope="module")
def lesion():
    """A centred, elongated lesion (wider than tall) on textured skin."""
    return lesion_picture(np.random.default_rng(3), axes=(45, 22))


def area_share(mask: Image.Image) -> float:
    return float(lesion_pixels(mask).mean())


def lesion_coloured(picture: Image.Image) -> np.ndarray:
    """Pixels of the lesion's brown: dark, not black, and much redder than green, unlike a vignette's skin."""
    pixels = np.asarray(picture, dtype=np.float64)
    red, green = pixels[..., 0], pixels[..., 1]
    lesion_red_to_green = LESION[0] / LESION[1]  # about 2; skin's is 1.25, at any darkness
    return (pixels.mean(axis=-1) > 30) & (pixels.mean(axis=-1) < 120) & (red > 0.8 * lesion_red_to_green * green)


@pytest.mark.parametrize("name", list(SHIFTS))
def test_each_shift_gives_a_valid_rgb_picture_and_a_mask_of_the_same_size(name, lesion):
    shifted = apply_shift(name, *lesion, seed=0, image_key="ISIC_1")

    assert shifted.picture.mode == "RGB" and shifted.mask.mode == "L"
    assert shifted.picture.size == shifted.mask.size
    assert min(shifted.picture.size) >= 32
    pixels = np.asarray(shifted.picture)
    assert pixels.dtype == np.uint8 and pixels.std() > 5  # a picture, not a blank
    assert lesion_pixels(shifted.mask).any()


@pytest.mark.parametrize("name", list(SHIFTS))
def test_each_shift_is_deterministic_for_a_seed_and_image(name, lesion):
    first = apply_shift(name, *lesion, seed=5, image_key="ISIC_1")
    again = apply_shift(name, *lesion, seed=5, image_key="ISIC_1")
    other = apply_shift(name, *lesion, seed=6, image_key="ISIC_1")

    assert np.array_equal(np.asarray(first.picture), np.asarray(again.picture))
    assert np.array_equal(np.asarray(first.mask), np.asarray(again.mask))
    if name not in SEEDLESS:
        assert not np.array_equal(np.asarray(first.picture), np.asarray(other.picture))


@pytest.mark.parametrize("name", GEOMETRIC)
def test_the_mask_moves_with_the_lesion(name, lesion):
    for key in ("ISIC_1", "ISIC_2", "ISIC_3"):
        shifted = apply_shift(name, *lesion, seed=0, image_key=key)
        brown, masked = lesion_coloured(shifted.picture), lesion_pixels(shifted.mask)

        overlap = (brown & masked).sum() / (brown | masked).sum()
        assert overlap > 0.8, f"{name} {key}: the mask covers the lesion's pixels with IoU {overlap:.2f}"


def test_zooming_out_shrinks_the_lesion_and_zooming_in_enlarges_it(lesion):
    share = area_share(lesion[1])
    for key in ("ISIC_1", "ISIC_2"):
        assert area_share(apply_shift("zoom_out_vignette", *lesion, 0, key).mask) < share / 2
        assert area_share(apply_shift("zoom_in", *lesion, 0, key).mask) > share * 1.5


def test_zooming_out_leaves_a_dark_circle_around_the_field(lesion):
    pixels = np.asarray(apply_shift("zoom_out_vignette", *lesion, 0, "ISIC_1").picture, dtype=np.float64)
    height, width = pixels.shape[:2]
    corner = pixels[: height // 10, : width // 10].mean()
    assert corner < 30
    left_of_lesion = int(0.2 * width)  # inside the circle, outside the lesion: skin
    assert pixels[height // 2 - 3 : height // 2 + 3, left_of_lesion - 3 : left_of_lesion + 3].mean() > 150
    assert pixels.shape[1] / pixels.shape[0] == pytest.approx(4 / 3, abs=0.02)  # the camera's aspect kept


def test_off_centre_moves_the_lesion_a_fifth_of_the_frame_or_more_towards_a_side(lesion):
    picture, mask = lesion
    centre_x, centre_y = lesion_centroid(mask)
    for key in ("ISIC_1", "ISIC_2", "ISIC_3", "ISIC_4"):
        moved = apply_shift("off_centre", picture, mask, 0, key)
        x, y = lesion_centroid(moved.mask)
        moved_by = max(abs(x - centre_x) / picture.width, abs(y - centre_y) / picture.height)
        assert moved_by > 0.15
        assert moved.picture.size == picture.size


def test_overflow_makes_the_lesion_fill_the_frame(lesion):
    for key in ("ISIC_1", "ISIC_2"):
        assert area_share(apply_shift("overflow", *lesion, 0, key).mask) > 0.8


def test_rotation_turns_the_lesion_by_thirty_to_sixty_degrees(lesion):
    def orientation(mask: Image.Image) -> float:
        rows, columns = np.nonzero(lesion_pixels(mask))
        x, y = columns - columns.mean(), rows - rows.mean()
        return np.degrees(0.5 * np.arctan2(2 * (x * y).mean(), (x * x).mean() - (y * y).mean()))

    assert abs(orientation(lesion[1])) < 2  # the generated lesion lies flat
    for key in ("ISIC_1", "ISIC_2", "ISIC_3"):
        turned = abs(orientation(apply_shift("rotated", *lesion, 0, key).mask))
        assert 28 <= turned <= 62


def test_a_vignette_darkens_the_corners_and_leaves_the_centre(lesion):
    picture, mask = lesion
    shifted = apply_shift("vignette", picture, mask, 0, "ISIC_1")
    before, after = np.asarray(picture, dtype=np.float64), np.asarray(shifted.picture, dtype=np.float64)
    assert after[:8, :8].mean() < 30
    np.testing.assert_allclose(after[60:90, 80:120], before[60:90, 80:120], atol=1)


def test_other_aspect_ratios_are_square_and_sixteen_by_nine(lesion):
    square = apply_shift("square_crop", *lesion, 0, "ISIC_1").picture
    wide = apply_shift("wide_crop", *lesion, 0, "ISIC_1").picture
    assert square.width == square.height
    assert wide.width / wide.height == pytest.approx(16 / 9, abs=0.02)


def test_high_resolution_arrives_three_to_five_times_larger_with_fine_texture_not_just_blur(lesion):
    picture, mask = lesion
    shifted = apply_shift("high_resolution", picture, mask, 0, "ISIC_1")
    factor = shifted.picture.width / picture.width
    assert 3 <= factor <= 5
    smooth = picture.resize(shifted.picture.size, Image.Resampling.LANCZOS)

    def fine_texture(image: Image.Image) -> float:
        grey = np.asarray(image.convert("L"), dtype=np.float64)
        return float(
            np.abs(grey[1:-1, 1:-1] * 4 - grey[:-2, 1:-1] - grey[2:, 1:-1] - grey[1:-1, :-2] - grey[1:-1, 2:]).mean()
        )

    assert fine_texture(shifted.picture) > 1.5 * fine_texture(smooth)


def test_jpeg_white_balance_and_blur_keep_the_framing_and_change_the_pixels(lesion):
    picture, mask = lesion
    pixels = np.asarray(picture, dtype=np.float64)
    for name in ("jpeg_50", "white_balance", "blur"):
        shifted = apply_shift(name, picture, mask, 0, "ISIC_1")
        assert shifted.picture.size == picture.size
        assert np.array_equal(np.asarray(shifted.mask), np.asarray(mask))
        assert np.abs(np.asarray(shifted.picture, dtype=np.float64) - pixels).mean() > 1
    balanced = np.asarray(apply_shift("white_balance", picture, mask, 0, "ISIC_1").picture, dtype=np.float64)
    ratio_before = pixels[..., 0].mean() / pixels[..., 2].mean()
    ratio_after = balanced[..., 0].mean() / balanced[..., 2].mean()
    assert abs(ratio_after / ratio_before - 1) > 0.1


def test_an_unknown_shift_is_refused_by_name(lesion):
    with pytest.raises(ValueError, match="unknown shift 'fisheye'.*zoom_in"):
        apply_shift("fisheye", *lesion, 0, "ISIC_1")
