"""Background cut-out (training.background) and the experiment recipe that trains with it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.training.lesions import SKIN, lesion_picture
from training.background import MARGIN_PX, cut_background, load_masks

# One picture with one lesion: the ellipse's half-axes, centred in 200x150.
AXES = (40, 28)


def _picture_and_mask(seed: int = 0):
    picture, mask = lesion_picture(np.random.default_rng(seed), axes=AXES)
    return np.asarray(picture, dtype=np.float32), np.asarray(mask)


def _ring(mask: np.ndarray, inner: float, outer: float) -> np.ndarray:
    """Pixels whose distance from the picture's centre, in units of the ellipse, is in [inner, outer)."""
    height, width = mask.shape
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    reach = np.sqrt(((xs - width / 2) / AXES[0]) ** 2 + ((ys - height / 2) / AXES[1]) ** 2)
    return (reach >= inner) & (reach < outer)


def test_the_lesion_and_its_margin_are_kept_and_the_rest_is_a_smooth_skin_field():
    picture, mask = _picture_and_mask()
    # Hairs cross the background: the field must not keep them.
    picture[5:8, :, :] = (60, 40, 35)

    out = cut_background(picture, mask).numpy()

    inside = mask >= 128
    np.testing.assert_allclose(out[inside], picture[inside], atol=0.5)
    far = _ring(mask, 1.0 + 3 * MARGIN_PX / AXES[1], np.inf)
    assert far.sum() > 10_000
    # The field: the background's mean colour (skin, darkened a little by the hairs) with a
    # shading of a few per cent, no hair and no texture left.
    background_mean = picture[~inside].mean(axis=0)
    np.testing.assert_allclose(out[far].mean(axis=0), background_mean, rtol=0.05)
    assert np.abs(out[5:8, 20:180] - background_mean).max() < 0.15 * max(SKIN)
    assert np.abs(np.diff(out[20:40, 20:60], axis=1)).max() < 2.0  # smooth: no pixel noise, no hair edge
    assert np.abs(out[far] - picture[far]).max() > 30  # the hair line was there and is gone


def test_a_wider_margin_keeps_the_skin_around_the_lesion_and_still_clears_the_far_background():
    picture, mask = _picture_and_mask()
    # Texture in the skin near the lesion (4-9 px beyond its edge along the minor axis, 6-13 along the major):
    # the default margin replaces part of it, a 20 px margin keeps all of it.
    near = _ring(mask, 1.0 + 4 / AXES[1], 1.0 + 9 / AXES[1])
    picture[near] = picture[near] * 0.7

    default = cut_background(picture, mask).numpy()
    wide = cut_background(picture, mask, margin_px=20).numpy()

    np.testing.assert_allclose(wide[near], picture[near], atol=0.5)
    assert np.abs(default[near] - picture[near]).max() > 20
    corner = np.zeros_like(mask, dtype=bool)
    corner[:12, :12] = True  # beyond any 20 px margin of the ellipse
    picture_corner_spread = picture[corner].std(axis=0).max()
    assert wide[corner].std(axis=0).max() < picture_corner_spread


def test_a_picture_without_a_lesion_in_its_mask_comes_back_unchanged():
    picture, mask = _picture_and_mask()

    np.testing.assert_array_equal(cut_background(picture, np.zeros_like(mask)).numpy(), picture)
    # Nor one whose lesion fills the frame: there is no background to take a colour from.
    np.testing.assert_array_equal(cut_background(picture, np.full_like(mask, 255)).numpy(), picture)


def test_masks_are_read_at_the_training_scale_and_a_missing_one_is_named(tmp_path):
    (tmp_path / "masks").mkdir()
    _, mask = lesion_picture(np.random.default_rng(1), axes=AXES)
    mask.resize((400, 300), Image.Resampling.NEAREST).save(tmp_path / "masks" / "ISIC_0000001.png")

    (read,) = load_masks(tmp_path, ["ISIC_0000001"], (150, 200))
    assert read.shape == (150, 200) and read.dtype == np.uint8
    assert abs((read >= 128).mean() - (np.asarray(mask) >= 128).mean()) < 0.01

    with pytest.raises(FileNotFoundError, match="ISIC_0000002.png is missing"):
        load_masks(tmp_path, ["ISIC_0000001", "ISIC_0000002"], (150, 200))


def test_the_cut_out_stream_cuts_that_share_of_its_pictures_and_needs_framing_and_masks():
    from training.experiments.recipe import ExperimentRecipe
    from training.preprocessing import SOURCE_SIZE

    pictures, masks = zip(*(_picture_and_mask(seed) for seed in range(4)), strict=True)
    images = np.stack(pictures).astype(np.uint8)
    # A green square in the far background, a colour no recolouring makes of skin: a cut-out picture loses it.
    images[:, 20:40, 20:45] = (0, 255, 0)
    labels, weights = np.arange(4), np.ones(7)
    masks = np.stack(masks)
    assert images.shape[1:3] == SOURCE_SIZE

    def green_squares(recipe) -> int:
        stream, endless = recipe.training_pictures(images, labels, weights, masks)
        assert not endless
        shown = [np.asarray(x) for _ in range(10) for x, _, _ in stream]
        assert {x.shape for x in shown} == {(150, 150, 3)}
        return sum(int((x[..., 1] > 1.5 * x[..., 0] + 20).sum() > 20) for x in shown)

    every = ExperimentRecipe(geometry="squash", framing=True, background_cutout=1.0, seed=3)
    none = ExperimentRecipe(geometry="squash", framing=True, background_cutout=1e-9, seed=3)
    assert green_squares(every) == 0
    assert green_squares(none) >= 20  # of 40: kept unless reframing zoomed or shifted it away

    with pytest.raises(ValueError, match="one lesion mask per training picture"):
        every.training_pictures(images, labels, weights, None)
    with pytest.raises(ValueError, match="--framing"):
        ExperimentRecipe(background_cutout=0.5).training_pictures(images, labels, weights, masks)
    with pytest.raises(ValueError, match="--cutout-margin-px must be 0 or more, not -3"):
        ExperimentRecipe(geometry="squash", framing=True, background_cutout=0.5, cutout_margin_px=-3).training_pictures(
            images, labels, weights, masks
        )


def test_the_card_names_the_margin_a_run_kept_and_older_runs_read_as_the_default():
    from training.export import describe_training_augmentation

    assert "and a 20 px margin" in describe_training_augmentation({"background_cutout": 0.3, "cutout_margin_px": 20})
    assert f"and a {MARGIN_PX} px margin" in describe_training_augmentation({"background_cutout": 0.3})


def test_a_cut_out_run_reads_the_masks_and_its_recipe_says_so(lesion_dataset, tmp_path):
    from training.experiments.recipe import ExperimentRecipe
    from training.export import describe_training_augmentation
    from training.train import train

    recipe = ExperimentRecipe(input_size=(32, 32), batch_size=8, head_epochs=1, fine_tune_epochs=1,
                              fine_tune_from="block_16_expand", geometry="squash", framing=True,
                              background_cutout=0.5)  # fmt: skip
    data_dir, split_file = str(lesion_dataset["data_dir"]), str(lesion_dataset["split_file"])
    _, run = train(recipe, data_dir, split_file, None, None, tmp_path, print)

    assert run["recipe"]["background_cutout"] == 0.5
    assert [entry["phase"] for entry in run["history"]] == ["head", "fine_tune"]
    assert "background cut-out (training.background, p 0.5)" in describe_training_augmentation(run["recipe"])

    without_masks = tmp_path / "no-masks"
    without_masks.mkdir()
    (without_masks / "images").symlink_to(lesion_dataset["data_dir"] / "images")
    with pytest.raises(FileNotFoundError, match="needs a lesion mask for every picture"):
        train(recipe, str(without_masks), split_file, None, None, tmp_path / "again", print)
