"""Framing and capture augmentation (training.framing): each change does what it says, and the training
geometry matches the serving one."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from training.preprocessing import SOURCE_SIZE, to_model_input


@pytest.fixture(scope="module")
def tf():
    import tensorflow

    tensorflow.random.set_seed(3)
    return tensorflow


def lesion(height: int = SOURCE_SIZE[0], width: int = SOURCE_SIZE[1]) -> np.ndarray:
    """Skin with a dark lesion in the middle, float32 0..255."""
    yy, xx = np.mgrid[0:height, 0:width]
    inside = np.hypot((xx - width / 2) / (width * 0.2), (yy - height / 2) / (height * 0.2)) < 1
    picture = np.full((height, width, 3), (210.0, 160.0, 140.0), np.float32)
    picture[inside] = (90.0, 55.0, 40.0)
    return picture


def lesion_share(picture: np.ndarray) -> float:
    return float((picture.mean(axis=-1) < 100).mean())


def test_zooming_in_and_out_changes_the_lesions_share_of_the_frame(tf):
    from training.framing import zoom

    picture = lesion()
    bigger = zoom(tf.constant(picture), tf.constant(1.5)).numpy()
    smaller = zoom(tf.constant(picture), tf.constant(0.6)).numpy()

    assert bigger.shape == smaller.shape == picture.shape
    assert lesion_share(bigger) > 1.5 * lesion_share(picture) > 1.5 * lesion_share(smaller) / 1.0


def test_a_vignette_darkens_the_corners_and_keeps_the_centre(tf):
    from training.framing import vignette

    picture = np.full((*SOURCE_SIZE, 3), 200.0, np.float32)
    darkened = vignette(tf.constant(picture)).numpy()

    assert darkened[0, 0].mean() < 0.5 * 200 and darkened[75, 100].mean() > 0.9 * 200


def test_a_shift_moves_the_lesion_off_centre(tf):
    from training.framing import shift

    moved = shift(tf.constant(lesion()), fraction=0.25).numpy()
    yy, xx = np.nonzero(moved.mean(axis=-1) < 100)
    assert moved.shape == lesion().shape
    # The lesion's centre is no longer where it was (unless both draws were ~0: seeded, they are not).
    assert abs(xx.mean() - SOURCE_SIZE[1] / 2) + abs(yy.mean() - SOURCE_SIZE[0] / 2) > 3


def test_blur_jpeg_softening_and_recolouring_keep_the_picture_in_range(tf):
    from training.framing import blur, jpeg, recolour, soften

    picture = tf.constant(lesion() + np.random.default_rng(0).normal(0, 20, lesion().shape).astype(np.float32))
    for changed in (blur(picture, 1.2), jpeg(picture), soften(picture, 0.5), recolour(picture)):
        values = changed.numpy()
        assert values.shape == tuple(picture.shape) and values.min() >= -1e-3 and values.max() <= 255.001
    noisy = picture.numpy()
    texture = lambda p: np.abs(np.diff(p, axis=1)).mean()  # noqa: E731
    assert texture(blur(picture, 1.2).numpy()) < 0.6 * texture(noisy)


def test_reframe_gives_varied_pictures_of_the_same_size(tf):
    from training.framing import reframe

    picture = tf.constant(lesion())
    outputs = [reframe(picture).numpy() for _ in range(12)]

    assert {output.shape for output in outputs} == {lesion().shape}
    assert len({round(float(output.mean()), 1) for output in outputs}) > 6  # not the same picture each time
    assert all(0 <= output.min() and output.max() <= 255 for output in outputs)


@pytest.mark.parametrize("geometry", ["squash", "centre_crop", "pad"])
def test_the_training_geometry_matches_the_serving_one(tf, geometry):
    from training.framing import to_input

    rng = np.random.default_rng(1)
    picture = np.clip(lesion() + rng.normal(0, 10, lesion().shape), 0, 255).astype(np.uint8)
    served = to_model_input(Image.fromarray(picture), (150, 150), geometry)
    trained = to_input(tf.constant(picture.astype(np.float32)), (150, 150), geometry).numpy()

    assert trained.shape == served.shape == (150, 150, 3)
    assert np.abs(trained - served).mean() < 1.5  # of 255: TensorFlow's and Pillow's bilinear, antialiased
