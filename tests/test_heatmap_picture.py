"""classifier.lib.heatmap_picture: the report's heatmap, drawn over the picture where the model looked."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from classifier.lib.heatmap_picture import MAX_SIDE, heatmap_over, ramp


def grey(size=(512, 256), kind="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (128, 128, 128)).save(buffer, kind)
    return buffer.getvalue()


def pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as picture:
        return np.asarray(picture.convert("RGB"), dtype=np.int16)


def test_the_ramp_is_the_pages_blue_to_red_with_weak_evidence_transparent():
    # static/heatmap.js's colour(v) at 0, 0.55 and 1.
    assert ramp(np.array([0.0, 0.55, 1.0])).tolist() == [[0, 0, 255, 0], [159, 255, 0, 91], [255, 26, 0, 166]]


def test_a_hot_cell_reddens_its_corner_of_the_box_and_nothing_outside_it():
    grid = [[0.0, 0.0], [0.0, 1.0]]  # the lower right quarter is hot
    out = pixels(heatmap_over(grey(), grid, box=[0.5, 0.0, 1.0, 1.0]))

    assert out.shape[:2] == (MAX_SIDE // 2, MAX_SIDE)  # shrunk to a thumbnail, the proportions kept
    height, width = out.shape[:2]
    outside = out[:, : width // 2 - 2]
    assert np.all(outside == 128)  # left of the box: the picture untouched
    hot = out[height - 3, width - 3]
    cold = out[2, width // 2 + 2]
    assert hot[0] > 200 and hot[2] < 100  # red
    assert np.abs(cold - 128).max() <= 1  # a zero cell is fully transparent


def test_a_box_reaching_past_the_picture_is_cut_at_its_edges():
    # The "pad" geometry: the model saw the picture letterboxed, so its box reaches past the top and bottom.
    out = pixels(heatmap_over(grey((100, 50), "WEBP"), [[1.0]], box=[0.0, -0.5, 1.0, 1.5]))

    assert out.shape[:2] == (50, 100)
    assert np.all(out[:, :, 0] > 180)  # covered everywhere, nothing shifted


def test_nothing_to_draw_gives_none():
    assert heatmap_over(grey(), []) is None
    assert heatmap_over(grey(), [[0.5]], box=[0.5, 0.5, 0.5, 0.9]) is None
    assert heatmap_over(b"not a picture", [[0.5]]) is None
