"""static/compare.js on the rendered comparison partial, in a bare page (the lesion page brings its own test):
two zoom.js viewers kept in step, each with its own heatmap."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import pytest
from django.template.loader import render_to_string

from tests.browser.conftest import lesion_png, screenshot

STATIC = Path(__file__).resolve().parents[2] / "static"
BOX = [0.125, 0.0, 0.875, 1.0]


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


@pytest.fixture
def compare_page(page):
    grid = [[0.1 * (row + col) for col in range(5)] for row in range(5)]
    pictures = [
        {"image_url": data_url(lesion_png(1, (800, 600))), "width": 800, "height": 600, "label": "L3, left scapula",
         "taken_at": dt.date(2026, 1, 10), "reading": "Melanocytic nevus, 81 %",
         "explanation": {"method": "layer-cam", "grid": grid, "box": BOX}},
        {"image_url": data_url(lesion_png(2, (800, 600))), "width": 800, "height": 600, "label": "L3, left scapula",
         "taken_at": dt.date(2026, 6, 2), "reading": "Melanoma, 55 %", "explanation": None},
    ]  # fmt: skip
    partial = render_to_string("classifier/_compare.html", {"pictures": pictures})
    page.set_content(f"<!doctype html><html lang='en'><body><main class='wide'>{partial}</main></body></html>")
    for css in ("lesionsite.css", "result.css", "compare.css"):
        page.add_style_tag(path=str(STATIC / css))
    page.add_script_tag(path=str(STATIC / "zoom.js"))
    page.add_script_tag(path=str(STATIC / "heatmap_canvas.js"))
    page.add_script_tag(path=str(STATIC / "compare.js"))
    return page


def pictures(page):
    return [page.locator(".viewer img").nth(i).bounding_box() for i in range(2)]


def viewers(page):
    return [page.locator(".viewer").nth(i).bounding_box() for i in range(2)]


def relative(picture, viewer):
    """The picture's offset and size as fractions of its viewer: equal when the two views are in step."""
    return ((picture["x"] - viewer["x"]) / viewer["width"], (picture["y"] - viewer["y"]) / viewer["height"],
            picture["width"] / viewer["width"])  # fmt: skip


def assert_in_step(page):
    (left, right), (left_box, right_box) = pictures(page), viewers(page)
    assert relative(left, left_box) == pytest.approx(relative(right, right_box), abs=0.01)


def test_zooming_and_moving_one_picture_moves_the_other(compare_page):
    page = compare_page
    fitted = pictures(page)[1]["width"]

    page.get_by_role("button", name="Zoom in (2026-01-10)").click()
    assert pictures(page)[1]["width"] == pytest.approx(1.5 * fitted, abs=1)
    assert_in_step(page)

    # Dragging the left picture pans the right one by the same share of its viewer.
    box = viewers(page)[0]
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 + 60, box["y"] + box["height"] / 2 + 40, steps=4)
    page.mouse.up()
    assert_in_step(page)

    # The keyboard on the right viewer, as zoom.js gives it: + zooms, an arrow moves, 0 fits; the left follows.
    page.locator(".viewer").nth(1).focus()
    page.keyboard.press("+")
    page.keyboard.press("ArrowRight")
    assert pictures(page)[0]["width"] == pytest.approx(2.25 * fitted, abs=1)
    assert_in_step(page)
    screenshot(page, "compare-zoomed")
    page.keyboard.press("0")
    assert pictures(page)[0]["width"] == pytest.approx(fitted, abs=1)


def test_unticking_together_lets_each_picture_zoom_on_its_own(compare_page):
    page = compare_page
    fitted = pictures(page)[1]["width"]
    page.get_by_label("Zoom and move both pictures together").uncheck()

    page.get_by_role("button", name="Zoom in (2026-01-10)").click()
    assert pictures(page)[1]["width"] == pytest.approx(fitted, abs=1)

    page.get_by_label("Zoom and move both pictures together").check()
    assert_in_step(page)


def test_each_picture_has_its_own_heatmap_on_its_own_pixels(compare_page):
    page = compare_page
    toggle = page.get_by_role("button", name="Show heatmap of 2026-01-10")
    assert page.get_by_text("No heatmap for this reading.").is_visible()  # the second has none
    assert not page.locator("[data-compare-legend]").is_visible()

    toggle.click()

    assert page.locator("[data-heatmap-toggle]").get_attribute("aria-pressed") == "true"
    canvas = page.locator("[data-heatmap]").first
    picture = pictures(page)[0]
    overlay = canvas.bounding_box()
    assert overlay["x"] == pytest.approx(picture["x"] + BOX[0] * picture["width"], abs=1.5)
    assert overlay["width"] == pytest.approx((BOX[2] - BOX[0]) * picture["width"], abs=1.5)
    assert not page.locator("[data-heatmap]").nth(1).is_visible()
    assert page.locator("[data-compare-legend]").is_visible()
    screenshot(page, "compare-heatmap")

    page.get_by_role("button", name="Hide heatmap of 2026-01-10").click()
    assert not canvas.is_visible()
