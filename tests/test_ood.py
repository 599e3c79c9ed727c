"""training.ood and the crop geometry a heatmap is drawn over: plain functions."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from training.ood import SCORE_CAP, OodDetector, fit_detector, load_detector, save_detector, texture
from training.preprocessing import crop_box
from training.synthetic_ood import KINDS, make_pictures


def clusters(rng, n_per_class=200, dim=16, classes=3):
    centres = rng.normal(0, 5, (classes, dim)) + 10
    features = np.concatenate([centre + rng.normal(0, 1, (n_per_class, dim)) for centre in centres])
    labels = np.repeat(np.arange(classes), n_per_class)
    return features, labels, centres


def smooth_pixels(rng, count, size=24):
    """Pictures with gentle texture, like dermatoscopic ones."""
    base = rng.uniform(60, 200, (count, 1, 1, 3))
    ramp = np.linspace(0, 20, size)[None, :, None, None]
    return base + ramp + rng.normal(0, 1, (count, size, size, 3))


def fitted(seed=0, flag_rate=0.03):
    rng = np.random.default_rng(seed)
    features, labels, centres = clusters(rng)
    validation, _, _ = clusters(np.random.default_rng(seed + 100))
    detector = fit_detector(features, labels, 3, validation, smooth_pixels(rng, len(validation)), flag_rate)
    return detector, rng, centres


def test_texture_is_the_mean_absolute_laplacian_of_the_grey_levels():
    flat = np.full((1, 10, 12, 3), 200, dtype=np.uint8)
    dot = flat.copy()
    dot[0, 5, 6] = (255, 255, 0)  # grey 170 on 200: the dot's Laplacian is 4 x 30, each neighbour's 30
    stripes = np.zeros((1, 10, 12, 3), dtype=np.uint8)
    stripes[0, :, ::2] = 255  # uint8 input must not wrap around while summing the channels

    values = texture(np.concatenate([flat, dot, stripes]))

    interior = 8 * 10
    assert values == pytest.approx([0.0, (120 + 4 * 30) / interior, 2 * 255], rel=1e-6)
    assert texture(np.concatenate([flat, dot]).astype(np.float32)) == pytest.approx(values[:2], rel=1e-6)


def test_each_check_flags_what_it_is_for_and_not_pictures_like_the_training_ones():
    detector, rng, centres = fitted()
    familiar_features = centres[1] + rng.normal(0, 1, (50, 16))
    familiar_pixels = smooth_pixels(rng, 50)
    unfamiliar_content = rng.normal(0, 1, (50, 16)) * 20 + 60  # far from every class
    nothing_to_see = np.full((50, 16), 0.01)  # a blank frame: features near zero
    noise = rng.uniform(0, 255, (50, 24, 24, 3))

    assert (detector.score(familiar_features, familiar_pixels) > 1).mean() <= 0.1
    assert (detector.score(unfamiliar_content, familiar_pixels) > 1).all()
    assert (detector.score(nothing_to_see, familiar_pixels) > 1).all()
    assert (detector.score(familiar_features, noise) > 1).all()


def test_a_flat_picture_is_flagged_even_when_its_features_look_familiar():
    # A retrained model may give a blank frame a feature vector like a lesion's (measured
    # with a logit-adjusted model): the too-smooth check needs no model.
    detector, rng, centres = fitted()
    familiar_features = centres[1] + rng.normal(0, 1, (20, 16))
    blank = np.full((20, 24, 24, 3), 180.0)
    gradient = np.broadcast_to(np.linspace(60, 200, 24)[None, None, :, None], (20, 24, 24, 3))

    assert (detector.score(familiar_features, blank) > 1).all()
    assert (detector.score(familiar_features, gradient) > 1).all()
    assert detector.thresholds[3] < detector.thresholds[2]  # below the gentle texture of the lesions


def test_the_score_of_a_blank_frame_is_capped_not_astronomical():
    detector, rng, centres = fitted()
    scores = detector.score(np.zeros((2, 16)), np.full((2, 24, 24, 3), 180.0))  # no features, no texture
    assert scores == pytest.approx([SCORE_CAP, SCORE_CAP])
    familiar = detector.score(centres[1] + rng.normal(0, 1, (20, 16)), smooth_pixels(rng, 20))
    assert (familiar < SCORE_CAP).all()


def test_a_detector_saved_with_three_thresholds_still_scores_with_them(tmp_path):
    detector, rng, centres = fitted(5)
    old = OodDetector(detector.whitening, detector.centres, detector.thresholds[:3])
    save_detector(old, tmp_path / "ood.npz")

    loaded = load_detector(tmp_path / "ood.npz")

    familiar_features = centres[0] + rng.normal(0, 1, (10, 16))
    blank = np.full((10, 24, 24, 3), 180.0)
    assert len(loaded.thresholds) == 3
    np.testing.assert_allclose(loaded.score(familiar_features, blank), old.score(familiar_features, blank), rtol=1e-3)
    assert (loaded.score(familiar_features, blank) < 1).all()  # no flatness check in an old detector


def test_the_thresholds_flag_about_the_chosen_share_of_validation_images():
    rng = np.random.default_rng(1)
    features, labels, _ = clusters(rng)
    validation, _, _ = clusters(np.random.default_rng(2), n_per_class=400)
    pixels = smooth_pixels(rng, len(validation))
    detector = fit_detector(features, labels, 3, validation, pixels, flag_rate=0.06)

    assert (detector.score(validation, pixels) > 1).mean() == pytest.approx(0.06, abs=0.02)


def test_a_saved_detector_scores_as_the_fitted_one(tmp_path):
    detector, rng, _ = fitted(3)
    save_detector(detector, tmp_path / "ood.npz")

    loaded = load_detector(tmp_path / "ood.npz")

    probe, pixels = rng.normal(10, 3, (20, 16)), smooth_pixels(rng, 20)
    np.testing.assert_allclose(loaded.score(probe, pixels), detector.score(probe, pixels), rtol=1e-3)


def test_fitting_without_every_class_and_scoring_the_wrong_width_are_refused():
    rng = np.random.default_rng(4)
    features, labels, _ = clusters(rng)
    pixels = smooth_pixels(rng, len(features))
    with pytest.raises(ValueError, match="no training features for classes \\[3\\]"):
        fit_detector(features, labels, 4, features, pixels)
    with pytest.raises(ValueError, match="flag_rate"):
        fit_detector(features, labels, 3, features, pixels, flag_rate=0)
    detector = fit_detector(features, labels, 3, features, pixels)
    with pytest.raises(ValueError, match="expects 16"):
        detector.score(np.zeros((2, 15)), pixels[:2])


@pytest.mark.parametrize(
    ("size", "input_size"), [((200, 150), (150, 150)), ((120, 300), (64, 64)), ((64, 32), (32, 64))]
)
def test_the_crop_box_is_the_region_the_model_input_is_made_from(size, input_size):
    # Every pixel unique: the fitted picture equals the box's crop, resized.
    width, height = size
    pixels = np.arange(width * height * 3, dtype=np.uint32).reshape(height, width, 3) % 251
    picture = Image.fromarray(pixels.astype(np.uint8))
    left, top, right, bottom = crop_box(size, input_size)

    fitted = ImageOps.fit(picture, (input_size[1], input_size[0]))
    cropped = picture.resize(
        (input_size[1], input_size[0]), box=(left * width, top * height, right * width, bottom * height)
    )

    assert np.array_equal(np.asarray(fitted), np.asarray(cropped))


def test_the_synthetic_pictures_are_of_every_kind_and_reproducible():
    first, second = make_pictures(2, seed=5), make_pictures(2, seed=5)
    assert set(first) == set(KINDS)
    for kind in KINDS:
        assert [p.tobytes() for p in first[kind]] == [p.tobytes() for p in second[kind]]
        assert all(p.size == (200, 150) and p.mode == "RGB" for p in first[kind])


def test_thresholds_set_on_reframed_validation_too_accept_softer_lesions_and_still_flag_blank_frames():
    from training.fit_ood import fit_ood_entries
    from training.ood import FLAGGED_ABOVE

    rng = np.random.default_rng(4)
    features, labels, _ = clusters(rng, classes=7)
    val_features, val_labels, _ = clusters(np.random.default_rng(5), n_per_class=30, classes=7)
    probabilities = np.full((len(val_labels), 7), 1 / 7)
    pixels = smooth_pixels(rng, len(val_labels))
    softer = pixels.mean(axis=(1, 2), keepdims=True) + 0.3 * (pixels - pixels.mean(axis=(1, 2), keepdims=True))
    blank = np.full((20, 24, 24, 3), 128.0)

    def flagged_share(detector, pictures):
        return float((detector.score(val_features[: len(pictures)], pictures) > FLAGGED_ABOVE).mean())

    plain, _, _ = fit_ood_entries((features, labels), (val_features, probabilities, val_labels, pixels))
    aware, ood, _ = fit_ood_entries(
        (features, labels), (val_features, probabilities, val_labels, pixels), reframed=(val_features, softer)
    )

    assert flagged_share(plain, softer) > 0.5 > flagged_share(aware, softer)  # softer pictures of lesions
    assert flagged_share(aware, blank) == flagged_share(plain, blank) == 1.0
    assert "reframed by training.framing" in ood["threshold_rule"] and "flagged_reframed_val" in ood
