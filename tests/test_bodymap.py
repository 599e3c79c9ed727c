"""The body map: HAM10000's sites on a front and a back outline, default points, the site of a click, the partial."""

from __future__ import annotations

import csv
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from django.template.loader import render_to_string

from classifier.lib import bodymap
from classifier.lib.bodymap import MapPoint, Pin, Placement, body_map, default_point, reading_state, suggest_site
from classifier.models import SITE_CHOICES

SVG = "{http://www.w3.org/2000/svg}"
HAM_METADATA = Path(os.environ.get("HAM10000_DIR", Path(__file__).resolve().parents[2] / "shared/data/ham10000"))


def every_site_and_side():
    for site in bodymap.SITES:
        for side in ("", *bodymap.valid_sides(site)):
            yield site, side


def test_the_sites_are_the_models_and_ham10000s_vocabulary():
    assert set(bodymap.SITES) == {code for code, _ in SITE_CHOICES}
    assert bodymap.CENTRAL_SITES | bodymap.PAIRED_SITES | {"unknown"} == set(bodymap.SITES)
    metadata = HAM_METADATA / "HAM10000_metadata.csv"
    if metadata.exists():
        with metadata.open() as rows:
            assert {row["localization"] for row in csv.DictReader(rows)} == set(bodymap.SITES)


@pytest.mark.parametrize(("site", "side"), list(every_site_and_side()))
def test_a_default_point_is_on_its_own_site_and_side(site, side):
    for view in (None, "front", "back"):
        point = default_point(site, side, view)
        if point is None:
            continue
        drawn_as = "hand" if site == "acral" else site
        assert suggest_site(point.view, point.x, point.y) == Placement(drawn_as, side or "midline")


def test_each_site_but_unknown_has_a_default_point_on_the_view_that_shows_it():
    for site in set(bodymap.SITES) - {"unknown"}:
        assert default_point(site, "left") is not None, site
    assert default_point("back", "left").view == "back"
    assert default_point("chest", "left").view == "front"
    assert default_point("unknown", "left") is None


def test_the_patients_left_is_on_the_viewers_right_from_the_front_and_on_the_left_from_the_back():
    assert default_point("chest", "left").x > 0.5
    assert default_point("back", "left").x < 0.5
    assert suggest_site("front", 0.8, 0.5) == Placement("hand", "left")
    assert suggest_site("back", 0.8, 0.5) == Placement("hand", "right")


def test_a_midline_point_is_on_the_centre_line():
    assert default_point("chest", "midline") == default_point("chest", "") == MapPoint("front", 0.5, 0.2325)
    assert suggest_site("front", 0.5, 0.3) == Placement("abdomen", "midline")
    assert suggest_site("front", 0.53, 0.3) == Placement("abdomen", "left")


def test_a_paired_site_has_no_midline_and_no_point_without_a_side():
    assert bodymap.valid_sides("hand") == ("left", "right")
    assert default_point("hand", "midline") is None
    assert default_point("hand", "") is None


def test_a_site_the_view_does_not_show_has_no_point_there():
    assert default_point("face", "left", view="back") is None
    assert default_point("back", "left", view="front") is None
    assert default_point("acral", "left", view="back") is None
    assert default_point("scalp", "left", view="back").view == "back"


def test_the_same_place_is_a_different_site_on_each_view():
    assert suggest_site("front", 0.5, 0.1).site == "face"
    assert suggest_site("back", 0.5, 0.1).site == "scalp"
    assert suggest_site("front", 0.45, 0.25).site == "chest"
    assert suggest_site("back", 0.45, 0.25).site == "back"


def test_ham10000s_trunk_is_the_hips_and_the_genital_region_lies_on_it():
    assert suggest_site("front", 0.35, 0.47) == Placement("trunk", "right")
    assert suggest_site("back", 0.5, 0.48) == Placement("trunk", "midline")
    assert suggest_site("front", 0.5, 0.5) == Placement("genital", "midline")


def test_a_point_off_the_figure_has_no_site():
    assert suggest_site("front", 0.02, 0.02) is None
    assert suggest_site("front", 0.5, 0.8) is None  # between the legs


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="between 0 and 1"):
        suggest_site("front", 1.2, 0.5)
    with pytest.raises(ValueError, match="view must be"):
        suggest_site("side", 0.5, 0.5)
    with pytest.raises(ValueError, match="unknown body site"):
        default_point("elbow", "left")
    with pytest.raises(ValueError, match="side must be"):
        default_point("chest", "up")


def test_the_regions_of_a_view_cover_the_figure_without_gaps_on_the_centre_line():
    # Every point on the centre line from the top of the head to the crotch is on some site.
    for y in range(3, 52):
        assert suggest_site("front", 0.5, y / 100) is not None, y
        assert suggest_site("back", 0.5, y / 100) is not None, y


@pytest.mark.parametrize(
    ("status", "has_reading", "is_malignant", "state"),
    [
        ("done", True, True, "suspicious"),
        ("done", True, False, "not-suspicious"),
        ("done", False, None, "no-reading"),  # out of distribution
        ("failed", False, None, "no-reading"),
        (None, False, None, "no-reading"),  # no picture yet
        ("queued", False, None, "pending"),
        ("running", False, None, "pending"),
    ],
)
def test_a_pin_state_follows_the_latest_reading(status, has_reading, is_malignant, state):
    assert reading_state(status, has_reading, is_malignant) == state


def pins():
    return [
        Pin("L1, left scapula", "/lesions/1/", "suspicious", default_point("back", "left")),
        Pin("L2 <chest> & co", "/lesions/2/", "not-suspicious", MapPoint("front", 0.6, 0.25)),
        Pin("L3", "/lesions/3/", "pending", MapPoint("front", 0.3, 0.6)),
        Pin("L4, somewhere", "/lesions/4/", "no-reading", None),
    ]


def test_the_map_puts_each_pin_on_its_view_in_viewbox_units():
    drawn = body_map(pins())
    front, back = drawn.views
    assert [p.pin.label for p in front.pins] == ["L2 <chest> & co", "L3"]
    assert (front.pins[0].cx, front.pins[0].cy) == (120.0, 100.0)
    assert [p.pin.label for p in back.pins] == ["L1, left scapula"]
    assert [pin.label for pin in drawn.unplaced] == ["L4, somewhere"]


def test_the_defaults_for_the_script_are_default_point_for_every_site_and_side():
    for site, side in every_site_and_side():
        point = default_point(site, side)
        expected = None if point is None else {"view": point.view, "x": point.x, "y": point.y}
        assert body_map([]).defaults[site][side] == expected


def svgs(html: str) -> list[ET.Element]:
    """Each <svg> of the rendered partial, parsed as XML (the partial writes well-formed SVG)."""
    found, start = [], 0
    while (start := html.find("<svg", start)) != -1:
        end = html.index("</svg>", start) + len("</svg>")
        found.append(ET.fromstring(html[start:end]))
        start = end
    return found


def test_the_partial_draws_both_views_with_a_link_per_pin():
    html = render_to_string("classifier/_bodymap.html", {"bodymap": body_map(pins())})

    front, back = svgs(html)[:2]
    assert (front.get("data-view"), back.get("data-view")) == ("front", "back")
    links = {view.get("data-view"): view.findall(f".//{SVG}a") for view in (front, back)}
    assert [a.get("href") for a in links["front"]] == ["/lesions/2/", "/lesions/3/"]
    assert [a.get("aria-label") for a in links["front"]] == ["L2 <chest> & co: not flagged as suspicious",
                                                              "L3: reading pending"]  # fmt: skip
    assert links["front"][0].get("class") == "pin pin-not-suspicious"
    assert links["front"][0].find(f"{SVG}title").text == "L2 <chest> & co: not flagged as suspicious"
    assert links["front"][0].find(f"{SVG}g").get("transform") == "translate(120.0 100.0)"
    (scapula,) = links["back"]
    assert scapula.get("class") == "pin pin-suspicious" and scapula.find(f".//{SVG}rect") is not None
    assert "L2 &lt;chest&gt; &amp; co" in html  # escaped, not markup
    assert '<a href="/lesions/4/" class="pin-no-reading">L4, somewhere</a>' in html
    assert "Not on the map" in html
    assert "bodymap-defaults" not in html  # the placing script's data only where a lesion is placed


def test_every_region_of_the_partial_names_its_site_and_side():
    html = render_to_string("classifier/_bodymap.html", {"bodymap": body_map([]), "placing": True})

    front = svgs(html)[0]
    regions = front.findall(f"./{SVG}g[@class='bodymap-parts']/{SVG}polygon[@data-site]")
    assert len(regions) == len(bodymap.figure("front").regions)
    sites = {(polygon.get("data-site"), polygon.get("data-side")) for polygon in regions}
    assert ("chest", "left") in sites and ("hand", "right") in sites and ("back", "left") not in sites
    assert 'id="bodymap-defaults"' in html and "data-placing" in html
    assert "the patient&#x27;s left is on your right" in html
