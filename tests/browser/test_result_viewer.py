"""The result page's picture: shown large, zoomable to full resolution and pannable, the heatmap on its pixels."""

from __future__ import annotations

import pytest

from tests.browser.conftest import lesion_image, log_in, screenshot
from tests.factories import make_prediction

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# A heatmap over the centre square of a 4:3 picture, as the shipped model's crop gives.
BOX = [0.125, 0.0, 0.875, 1.0]


@pytest.fixture
def large_result(owner):
    image = lesion_image(owner, seed=3, size=(1200, 900), original_filename="large.png")
    grid = [[0.1 * (row + col) for col in range(5)] for row in range(5)]
    return make_prediction(owner, image=image, status="done", top_class="nv", is_malignant=False,
                           is_out_of_distribution=False,
                           explanation={"method": "grad-cam", "class": "nv", "grid": grid, "box": BOX})  # fmt: skip


def boxes(page):
    return page.locator(".viewer img").bounding_box(), page.locator("canvas#heatmap").bounding_box()


def assert_heatmap_on_its_box(page):
    picture, overlay = boxes(page)
    assert overlay["x"] == pytest.approx(picture["x"] + BOX[0] * picture["width"], abs=1.5)
    assert overlay["width"] == pytest.approx((BOX[2] - BOX[0]) * picture["width"], abs=1.5)
    assert overlay["y"] == pytest.approx(picture["y"], abs=1.5)
    assert overlay["height"] == pytest.approx(picture["height"], abs=1.5)


def test_the_picture_zooms_to_full_resolution_with_the_heatmap_aligned(page, live_server, owner, large_result):
    log_in(page, live_server.url, "alice", "alice-password-1")
    page.goto(f"{live_server.url}/predictions/{large_result.pk}/")
    viewer = page.locator("#viewer")
    fitted = viewer.bounding_box()
    assert fitted["width"] > 450  # shown large, not as a 316 px thumbnail
    page.get_by_role("button", name="Show heatmap").click()
    assert_heatmap_on_its_box(page)
    screenshot(page, "result-large")

    page.get_by_role("button", name="Full resolution").click()

    picture, _ = boxes(page)
    assert picture["width"] == pytest.approx(1200, abs=1)  # one picture pixel per screen pixel
    assert "Zoom 100 % of full resolution" in page.locator("[data-zoom-level]").inner_text()
    assert_heatmap_on_its_box(page)
    assert viewer.bounding_box()["width"] == pytest.approx(fitted["width"], abs=1)  # the viewer itself stays put

    # Dragging moves the picture under the viewer; the heatmap goes with it.
    before = picture["x"]
    page.mouse.move(fitted["x"] + 200, fitted["y"] + 150)
    page.mouse.down()
    page.mouse.move(fitted["x"] + 100, fitted["y"] + 100, steps=5)
    page.mouse.up()
    assert boxes(page)[0]["x"] == pytest.approx(before - 100, abs=2)
    assert_heatmap_on_its_box(page)

    page.get_by_role("button", name="Fit").click()
    assert boxes(page)[0]["width"] == pytest.approx(fitted["width"], abs=1)


def test_the_viewer_zooms_with_the_wheel_and_the_keyboard(page, live_server, owner, large_result):
    log_in(page, live_server.url, "alice", "alice-password-1")
    page.goto(f"{live_server.url}/predictions/{large_result.pk}/")
    viewer = page.locator("#viewer")
    fitted = boxes(page)[0]["width"]

    viewer.hover()
    page.mouse.wheel(0, -100)
    wheeled = boxes(page)[0]["width"]
    viewer.focus()
    page.keyboard.press("+")
    keyed = boxes(page)[0]["width"]
    page.keyboard.press("0")

    assert wheeled == pytest.approx(1.5 * fitted, rel=0.01)
    assert keyed == pytest.approx(1.5 * wheeled, rel=0.01)
    assert boxes(page)[0]["width"] == pytest.approx(fitted, abs=1)
