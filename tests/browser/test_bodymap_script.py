"""static/bodymap.js on the rendered body-map partial, in a bare page (the patient page brings its own test):
a click places the new-lesion marker and fills the form; the site list does the same without a pointer."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.template.loader import render_to_string

from classifier.lib.bodymap import MapPoint, Pin, body_map, default_point
from tests.browser.conftest import screenshot

STATIC = Path(__file__).resolve().parents[2] / "static"

FORM = """
<form id="new-lesion">
  <label>Site <select name="site" data-bodymap-field="site"><option value="">—</option>{sites}</select></label>
  <label>Side <select name="side" data-bodymap-field="side"><option value="">—</option>
    <option value="left">left</option><option value="right">right</option>
    <option value="midline">midline</option></select></label>
  <input type="hidden" name="view" data-bodymap-field="view">
  <input type="hidden" name="x" data-bodymap-field="x">
  <input type="hidden" name="y" data-bodymap-field="y">
  {bodymap}
</form>
"""


@pytest.fixture
def map_page(page):
    from classifier.lib.bodymap import SITES

    pins = [
        Pin("L1, left scapula", "#lesion-1", "suspicious", default_point("back", "left")),
        Pin("L2, chest", "#lesion-2", "not-suspicious", MapPoint("front", 0.6, 0.25)),
    ]
    partial = render_to_string("classifier/_bodymap.html", {"bodymap": body_map(pins), "placing": True})
    sites = "".join(f'<option value="{site}">{site}</option>' for site in SITES)
    page.set_content(f"<!doctype html><html lang='en'><body>{FORM.format(sites=sites, bodymap=partial)}</body></html>")
    page.add_style_tag(path=str(STATIC / "lesionsite.css"))
    page.add_style_tag(path=str(STATIC / "bodymap.css"))
    page.add_script_tag(path=str(STATIC / "bodymap.js"))
    return page


def values(page):
    return page.evaluate(
        """() => Object.fromEntries(["view", "x", "y", "site", "side"].map(
            (name) => [name, document.querySelector(`[data-bodymap-field="${name}"]`).value]))"""
    )


def test_a_click_on_the_figure_places_the_marker_and_fills_the_form(map_page):
    page = map_page
    front = page.locator('svg[data-view="front"]')
    box = front.bounding_box()
    # The patient's left hand on the front view: the viewer's right.
    page.mouse.click(box["x"] + 0.79 * box["width"], box["y"] + 0.505 * box["height"])

    filled = values(page)
    assert (filled["view"], filled["site"], filled["side"]) == ("front", "hand", "left")
    assert float(filled["x"]) == pytest.approx(0.79, abs=0.01)
    assert float(filled["y"]) == pytest.approx(0.505, abs=0.01)
    assert front.locator("[data-marker]").is_visible()
    assert not page.locator('svg[data-view="back"] [data-marker]').is_visible()
    assert "hand, left" in page.locator("[data-bodymap-status]").inner_text().lower()
    screenshot(page, "bodymap-placed")


def test_choosing_the_site_from_the_list_places_the_marker_at_its_default_point(map_page):
    page = map_page
    page.get_by_label("Site").select_option("back")
    page.get_by_label("Side").select_option("right")

    expected = default_point("back", "right")
    filled = values(page)
    assert (filled["view"], float(filled["x"]), float(filled["y"])) == (expected.view, expected.x, expected.y)
    assert page.locator('svg[data-view="back"] [data-marker]').is_visible()

    page.get_by_label("Site").select_option("unknown")
    assert values(page)["view"] == values(page)["x"] == ""
    assert not page.locator("[data-marker]").first.is_visible()


def test_a_pin_is_a_named_link(map_page):
    link = map_page.get_by_role("link", name="L1, left scapula: suspicious for malignancy")
    link.focus()
    map_page.keyboard.press("Enter")
    assert map_page.evaluate("location.hash") == "#lesion-1"
