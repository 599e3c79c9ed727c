"""The result page with the shipped model: the heatmap overlay, and the warning for a non-dermatoscopic picture.

These use the trained version in models/ (not the tiny random test model), so the
heatmap and the out-of-distribution check are the ones clinicians get.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from PIL import Image

from classifier.models import ModelVersion
from classifier.registry import register_model_versions
from tests.browser.conftest import log_in, screenshot
from tests.images import dermoscopy_like_png
from training.card import find_version_dirs, read_card
from training.preprocessing import input_box

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SHIPPED = find_version_dirs(Path(__file__).resolve().parents[2] / "models")[-1]


@pytest.fixture
def shipped_model(tiny_model_root, settings):
    """The shipped version, linked into the test worker's MODEL_ROOT and active."""
    link = tiny_model_root / SHIPPED.name
    link.symlink_to(SHIPPED, target_is_directory=True)
    try:
        settings.MODEL_ROOT = tiny_model_root
        register_model_versions(tiny_model_root)
        version = ModelVersion.objects.get(name=read_card(SHIPPED).version)
        version.activate()
        yield version
    finally:
        link.unlink()


def upload_and_wait(page, live_server, path: Path) -> None:
    log_in(page, live_server.url, "alice", "alice-password-1")
    page.get_by_label("Dermatoscopic images").set_input_files(str(path))
    page.get_by_role("button", name="Upload and classify").click()
    page.wait_for_url("**/predictions/*/")
    page.locator('[data-field="status"]', has_text="Done").wait_for(timeout=90_000)  # a first model load


def test_the_heatmap_overlay_turns_on_and_off(page, live_server, celery_worker, owner, shipped_model, tmp_path):
    lesion = tmp_path / "lesion.png"
    lesion.write_bytes(dermoscopy_like_png(seed=5))  # in distribution for the shipped versions: a reading

    upload_and_wait(page, live_server, lesion)

    assert page.locator('[data-field="top_class_name"]').is_visible()
    assert page.get_by_text("does not look like a dermatoscopic image").is_hidden()
    # The reading the page drew as it arrived: the shipped card's score and threshold, to one decimal.
    card = read_card(SHIPPED)
    assert page.locator('[data-field="malignant_threshold"]').inner_text() == f"{100 * card.malignant_threshold:.1f}"
    assert re.fullmatch(r"\d{1,3}\.\d", page.locator('[data-field="malignant_probability"]').inner_text())
    assert card.malignancy.description in page.locator("body").inner_text()
    toggle = page.get_by_role("button", name="Show heatmap")
    heatmap = page.locator("canvas#heatmap")
    legend = page.locator('[data-field="heatmap_legend"]')
    assert toggle.is_enabled() and heatmap.is_hidden() and legend.is_hidden()
    # The shipped card serves Layer-CAM, and the page quotes its validation figures beside it.
    assert "Layer-CAM" in page.locator('[data-field="explanation_help"]').inner_text()
    figures = page.locator('[data-field="heatmap_figures"]')
    served = read_card(SHIPPED).raw["explanation"]["figures"]
    assert figures.is_visible()
    assert f"inside the lesion for {round(100 * served['pointing_game'])} % of pictures" in figures.inner_text()

    toggle.click()

    assert heatmap.is_visible() and legend.is_visible()
    assert page.get_by_role("button", name="Hide heatmap").get_attribute("aria-pressed") == "true"
    # The overlay covers the part of the 200x150 picture the model saw, by the card's geometry
    # (the whole picture for a squashing version, the centre square for a centre-cropping one).
    card = read_card(SHIPPED)
    left, top, right, bottom = input_box((200, 150), card.input_size, card.geometry)
    frame = page.locator(".viewer img").bounding_box()
    overlay = heatmap.bounding_box()
    assert overlay["height"] == pytest.approx(frame["height"] * (bottom - top), abs=2)
    assert overlay["width"] == pytest.approx(frame["width"] * (right - left), abs=2)
    assert overlay["x"] == pytest.approx(frame["x"] + frame["width"] * left, abs=2)
    painted = page.evaluate(
        """() => { const c = document.getElementById('heatmap');
                   const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                   let alpha = 0; for (let i = 3; i < d.length; i += 4) alpha = Math.max(alpha, d[i]);
                   return [c.width, c.height, alpha]; }"""
    )
    assert painted[:2] == [10, 10] and painted[2] > 0  # Layer-CAM at block_12_expand_relu: 10x10 at 150 px
    screenshot(page, "result-heatmap")

    page.get_by_role("button", name="Hide heatmap").click()
    assert heatmap.is_hidden() and legend.is_hidden()
    assert page.get_by_role("button", name="Show heatmap").get_attribute("aria-pressed") == "false"


def test_a_blank_picture_gets_a_warning_instead_of_a_lesion_label(
    page, live_server, celery_worker, owner, shipped_model, tmp_path
):
    blank = tmp_path / "blank.png"
    buffer = io.BytesIO()
    Image.new("RGB", (200, 150), (245, 245, 245)).save(buffer, "PNG")
    blank.write_bytes(buffer.getvalue())

    upload_and_wait(page, live_server, blank)

    warning = page.get_by_role("alert").filter(has_text="does not look like a dermatoscopic image")
    assert warning.is_visible()
    assert page.locator('[data-field="top_class_name"]').is_hidden()
    assert page.locator('[data-field="malignancy_flag"]').is_hidden()
    # The model's output is still there for whoever wants it, folded away.
    assert page.locator("details.probabilities").get_attribute("open") is None
    screenshot(page, "result-out-of-distribution")
